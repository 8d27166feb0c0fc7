"""Sensors of the incident-response package."""

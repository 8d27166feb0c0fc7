"""Triggers of the incident-response package."""

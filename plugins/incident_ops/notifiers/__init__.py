"""Notifiers of the incident-response package."""

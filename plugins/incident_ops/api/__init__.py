"""Api of the incident-response package."""

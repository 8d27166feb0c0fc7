"""Incident response operations: hooks, sensors, triggers and API for Airflow."""

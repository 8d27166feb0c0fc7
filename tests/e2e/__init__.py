"""End-to-end tests against real Airflow processes."""

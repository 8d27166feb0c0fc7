"""Browser tests: headless Chromium against a real Airflow."""

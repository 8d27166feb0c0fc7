"""Developer scripts: running a local Airflow for the demo and the end-to-end tests."""

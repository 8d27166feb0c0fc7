"""Domain logic of the incident-response package: pure Python, no Airflow import."""

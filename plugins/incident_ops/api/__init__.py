"""The incident-response API served by Airflow's API server: approval pages, JSON API, Slack interactivity."""

#!/bin/bash
# Runs once, when the postgres container starts on an empty data volume: creates the incident store's
# own role and database next to Airflow's metadata database (Airflow's DB is not ours to add tables to).
set -euo pipefail

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v password="${INCIDENT_STORE_PASSWORD:?INCIDENT_STORE_PASSWORD must be set}" <<'SQL'
CREATE ROLE incident_store LOGIN PASSWORD :'password';
CREATE DATABASE incident_store OWNER incident_store;
SQL

# Airflow 3.3.2 with this project's pinned providers and libraries. The code (dags/, plugins/,
# include/) is mounted by docker-compose.yaml, so the image only changes when requirements.txt does.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.txt /requirements.txt

# The base image already runs as `airflow`; say so, because pip must not install as root here.
USER airflow
# Naming apache-airflow keeps pip from ever resolving it to another version while installing the lock.
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /requirements.txt

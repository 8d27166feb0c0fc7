# Airflow 3.3.2 with this project's locked providers and libraries. The code (dags/, plugins/, include/)
# is mounted by docker-compose.yaml, so the image only changes when requirements.txt does.
# Python 3.11: the interpreter requirements.txt is compiled for.
FROM apache/airflow:3.3.2-python3.11

# Airflow's image installs extra packages as `airflow` (into its user site), never as root.
USER airflow
COPY --chown=airflow:0 requirements.txt /requirements.txt

# The lock pins apache-airflow itself. Naming the image's own version next to it makes pip stop with a
# conflict, rather than swap Airflow, if the lock and the FROM line ever disagree.
RUN python -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
 && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /requirements.txt

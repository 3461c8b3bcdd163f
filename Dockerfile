# The image every Airflow service in docker-compose.yaml runs: official Airflow plus this project.
# Keep the tag's Airflow version equal to apache-airflow in requirements.txt (a test checks it).
FROM apache/airflow:3.3.2-python3.11

# The project's pins for what the base image does not carry (psycopg 3 for COPY; the same versions as the tests).
COPY --chown=airflow:root requirements.txt /opt/wecom/requirements.txt
RUN grep -E '^(psycopg|psycopg-binary|apache-airflow-providers-postgres|apache-airflow-providers-celery)==' \
        /opt/wecom/requirements.txt > /tmp/pins.txt \
 && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/pins.txt

# The project itself (the `wecom` package and the wecom-simulator console script).
COPY --chown=airflow:root pyproject.toml README.md /opt/wecom/
COPY --chown=airflow:root plugins /opt/wecom/plugins
RUN pip install --no-cache-dir --no-deps /opt/wecom

# SQL and templates are mounted from the project's include/ folder.
ENV WECOM_SQL_DIR=/opt/airflow/include/sql \
    WECOM_TEMPLATE_DIR=/opt/airflow/include/templates

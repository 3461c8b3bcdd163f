# The image every Airflow service in docker-compose.yaml runs: official Airflow plus this project.
# Keep the tag's Airflow version equal to apache-airflow in requirements.txt (a test checks it).
FROM apache/airflow:3.3.2-python3.11 AS airflow

# The project's pins for what the base image does not carry (psycopg 3 for COPY; the same versions as the tests).
COPY --chown=airflow:root requirements.txt /opt/wecom/requirements.txt
RUN grep -E '^(psycopg|psycopg-binary|apache-airflow-providers-(postgres|celery|openlineage)|openlineage[-_a-z]*)==' \
        /opt/wecom/requirements.txt > /tmp/pins.txt \
 && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/pins.txt

# The project itself: the `wecom` package with its SQL and templates (include/, linked from plugins/wecom).
COPY --chown=airflow:root pyproject.toml README.md /opt/wecom/
COPY --chown=airflow:root plugins /opt/wecom/plugins
COPY --chown=airflow:root include /opt/wecom/include
RUN pip install --no-cache-dir --no-deps /opt/wecom

# `docker compose --profile simulator up`: the same image plus the WeCom simulator (development only; the
# production target above does not carry it).
FROM airflow AS simulator
COPY --chown=airflow:root devtools /opt/wecom/devtools
RUN pip install --no-cache-dir --no-deps /opt/wecom/devtools

# The default target, what every Airflow service runs.
FROM airflow

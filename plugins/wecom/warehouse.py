"""The warehouse: PostgreSQL reached through an Airflow connection (psycopg 3)."""

from __future__ import annotations

from typing import Any

WAREHOUSE_CONN_ID = "wecom_warehouse"


def connect(conn_id: str = WAREHOUSE_CONN_ID) -> Any:
    """A new psycopg connection for an Airflow postgres connection id."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=conn_id).get_conn()

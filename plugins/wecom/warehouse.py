"""The warehouse: PostgreSQL reached through an Airflow connection (psycopg 3)."""

from __future__ import annotations

from typing import Any

WAREHOUSE_CONN_ID = "wecom_warehouse"


def connect(conn_id: str = WAREHOUSE_CONN_ID) -> Any:
    """A new psycopg connection for an Airflow postgres connection id, in autocommit mode: the project
    opens its transactions explicitly (``with conn.transaction():``) where it needs them."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    conn.autocommit = True
    return conn


def connect_current(conn_id: str = WAREHOUSE_CONN_ID) -> Any:
    """A connection to a warehouse whose schema is up to date (migrated on first use in a process)."""
    from wecom.migrations import ensure_current

    conn = connect(conn_id)
    ensure_current(conn)
    return conn


def require_autocommit(conn: Any, who: str) -> None:
    """Functions that open their own transactions need a connection that is not inside one already."""
    if not conn.autocommit:
        raise ValueError(
            f"{who} needs a connection in autocommit mode (wecom.warehouse.connect opens them so): it opens its"
            " own transactions and never changes the mode of a connection it did not open"
        )

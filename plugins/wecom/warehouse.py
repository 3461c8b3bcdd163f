"""The warehouse: PostgreSQL reached through an Airflow connection (psycopg 3), and its schema, kept current
by the numbered migrations in ``include/sql/migrations`` (applied once each, recorded, under a lock)."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from typing import Any

from psycopg.rows import dict_row

from wecom import sql
from wecom.errors import PipelineStateError
from wecom.files import SQL

WAREHOUSE_CONN_ID = "wecom_warehouse"
MIGRATING = "warehouse.sql"


def connect(conn_id: str = WAREHOUSE_CONN_ID) -> Any:
    """A new psycopg connection for an Airflow postgres connection id, in autocommit mode: the project
    opens its transactions explicitly (``with conn.transaction():``) where it needs them."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    conn.autocommit = True
    return conn


def connect_current(conn_id: str = WAREHOUSE_CONN_ID) -> Any:
    """A connection to a warehouse whose schema is up to date (migrated on first use in a process)."""
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


log = logging.getLogger(__name__)
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def available() -> list[tuple[int, str]]:
    """(version, file name) of every migration, in order."""
    found = []
    for path in sorted((SQL / "migrations").glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise PipelineStateError(f"migration file {path.name} must be named NNN_description.sql")
        found.append((int(match.group(1)), path.name))
    versions = [version for version, _ in found]
    if len(set(versions)) != len(versions):
        raise PipelineStateError(f"two migrations share a number in {SQL / 'migrations'}")
    return found


def apply_migrations(conn: Any) -> list[str]:
    """Apply what is missing, each in its own transaction, under a lock; return what was applied."""
    require_autocommit(conn, "apply_migrations")
    applied_now = []
    conn.execute(sql.statement(MIGRATING, "migrations_lock"))
    try:
        conn.execute(sql.load("schema_migrations.sql"))
        done = {row[0]: row[1] for row in conn.execute(sql.statement(MIGRATING, "applied"))}
        for version, name in available():
            text = sql.load(f"migrations/{name}")
            checksum = hashlib.sha256(text.encode()).hexdigest()
            if version in done:
                if done[version] != checksum:
                    log.warning("Migration %s changed after it was applied; it is not re-run", name)
                continue
            with conn.transaction():
                conn.execute(text)
                conn.execute(sql.statement(MIGRATING, "record"), (version, name, checksum))
            log.info("Applied migration %s", name)
            applied_now.append(name)
    finally:
        conn.execute(sql.statement(MIGRATING, "migrations_unlock"))
    return applied_now


_checked: set[str] = set()


def ensure_current(conn: Any) -> None:
    """Apply missing migrations once per process per database (senders may run before any sync)."""
    database = conn.info.dsn  # host, port, dbname, user: never the password
    if database in _checked:
        return
    apply_migrations(conn)
    _checked.add(database)


def dict_rows(
    conn: Any, file: str, name: str, params: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The rows of one named query as dicts keyed by column name (psycopg's ``dict_row``)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql.statement(file, name), params)
        return cur.fetchall()

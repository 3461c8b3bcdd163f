"""Look for credentials where they must never be: every table row (but the one private token table),
every Airflow metadata row (XCom, rendered fields, events), every log file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import psycopg

Place = tuple[str, str]  # (where, text)


def postgres_rows(url: str, skip_schemas: tuple[str, ...] = ("wecom_private",)) -> Iterator[Place]:
    """Every row of every table of the database as text, outside ``skip_schemas``."""
    skip = ("pg_catalog", "information_schema", *skip_schemas)
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE NOT (schemaname = ANY(%s))", (list(skip),)
        ).fetchall()
        for schema, table in tables:
            for (text,) in conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t'):  # noqa: S608
                yield f"{schema}.{table}", text


def sqlite_rows(path: Path) -> Iterator[Place]:
    with sqlite3.connect(path) as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for row in db.execute(f'SELECT * FROM "{table}"'):  # noqa: S608
                yield table, " ".join(str(v) for v in row)


def files(root: Path) -> Iterator[Place]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield str(path), path.read_text(errors="replace")


def find_leaks(secrets: dict[str, str], places: Iterable[Place]) -> tuple[list[tuple[str, str]], int]:
    """(secret name, where) for every secret found, and how many places were scanned."""
    leaks, scanned = [], 0
    values = {name: value for name, value in secrets.items() if value}
    for where, text in places:
        scanned += 1
        leaks += [(name, where) for name, value in values.items() if value in text]
    return leaks, scanned

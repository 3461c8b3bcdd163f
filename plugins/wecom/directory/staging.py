"""Stage a snapshot in wecom_staging with binary COPY, and drop staging once applied or left behind."""

from __future__ import annotations

import io
import logging
import operator
from collections.abc import Iterator
from typing import Any

from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.copy import Copy, FileWriter
from psycopg.pq import Format

from wecom import sql
from wecom.directory.snapshot import DEPARTMENT_COLUMNS, MEMBERSHIP_COLUMNS, USER_COLUMNS, Snapshot
from wecom.directory.state import (
    Scope,
    changed_since_applied,
    encode_state,
    last_applied_digest,
    row_state,
    state_digest,
    subset,
)
from wecom.errors import PipelineStateError
from wecom.warehouse import require_autocommit

log = logging.getLogger(__name__)

STAGING = "directory/staging.sql"
# Each staging table's columns in the order its rows are written; its COPY statement in staging.sql lists
# the same columns in the same order.
STAGING_COLUMNS = {
    "departments": DEPARTMENT_COLUMNS,
    "users": USER_COLUMNS,
    "user_departments": MEMBERSHIP_COLUMNS,
}
DROP_SNAPSHOT = (
    "drop_snapshot",
    "drop_snapshot_departments",
    "drop_snapshot_users",
    "drop_snapshot_memberships",
    "drop_snapshot_scope_users",
    "drop_snapshot_scope_departments",
)


def stage_snapshot(
    conn: Any,
    snapshot: Snapshot,
    dag_run_id: str | None = None,
    chunk: int = 5000,
    scope: Scope | None = None,
) -> int:
    """Stage a complete snapshot (or, with ``scope``, the ids callback events named); its id.

    A complete snapshot is summed up row by row first (``wecom.directory.state.row_state``). Identical to
    the last applied one: recorded as ``unchanged``, nothing staged. Otherwise, when the rows of the last
    applied one are known, only the members and departments whose rows differ, appeared or disappeared are
    staged (a scoped snapshot that still speaks for the whole directory); a change too large for that, or
    a first sync, stages everything.
    """
    require_autocommit(conn, "stage_snapshot")
    counts = snapshot.counts()
    if scope is not None:
        return _stage(conn, snapshot, dag_run_id, chunk, counts, scope=scope, complete=False)
    state = row_state(snapshot)
    digest = state_digest(state)
    if digest == last_applied_digest(conn):
        snapshot_id = _record_snapshot(conn, dag_run_id, counts, digest=digest, unchanged=True)
        log.info("Snapshot %s is identical to the last applied one: nothing staged", snapshot_id)
        return snapshot_id
    changed = changed_since_applied(conn, state)
    if changed is not None:
        log.info(
            "Staging the changes only: %d member(s), %d department(s)",
            len(changed.userids),
            len(changed.department_ids),
        )
        snapshot = subset(snapshot, changed)
    encoded = encode_state(state)
    return _stage(
        conn, snapshot, dag_run_id, chunk, counts, scope=changed, complete=True, digest=digest, state=encoded
    )


def _stage(
    conn: Any,
    snapshot: Snapshot,
    dag_run_id: str | None,
    chunk: int,
    counts: dict[str, int],
    *,
    scope: Scope | None,
    complete: bool,
    digest: str | None = None,
    state: bytes | None = None,
) -> int:
    """COPY the snapshot's rows (binary, formatted while the previous piece is sent) in one transaction."""
    statements = sql.statements(STAGING)
    with conn.cursor() as cur, conn.cursor() as formatter, conn.transaction():
        snapshot_id = _record_snapshot(
            conn, dag_run_id, counts, digest=digest, partial=scope is not None, complete=complete, state=state
        )
        # Every staged row takes the snapshot id from this setting (the column's default).
        conn.execute(statements["set_snapshot_id"], {"snapshot_id": str(snapshot_id)})
        for table, rows in _staging_rows(snapshot):
            types = _column_types(conn, table)  # before the COPY
            with cur.copy(statements[f"copy_{table}"]) as copy:
                for data in _copy_data(formatter, rows, types, chunk):
                    copy.write(data)
        if scope:
            _stage_scope(conn, snapshot_id, scope)
    log.info("Staged snapshot %s: %s", snapshot_id, snapshot.counts())
    return snapshot_id


def _record_snapshot(
    conn: Any,
    dag_run_id: str | None,
    counts: dict[str, int],
    *,
    digest: str | None,
    unchanged: bool = False,
    partial: bool = False,
    complete: bool = True,
    state: bytes | None = None,
) -> int:
    params = {
        "dag_run_id": dag_run_id,
        "digest": digest,
        "unchanged": unchanged,
        "partial": partial,
        "complete": complete,
        "row_state": state,
        **counts,
    }
    return conn.execute(sql.statements(STAGING)["record_snapshot"], params).fetchone()[0]


def _stage_scope(conn: Any, snapshot_id: int, scope: Scope) -> None:
    statements = sql.statements(STAGING)
    userids = sorted(u.lower() for u in scope.userids)
    conn.execute(statements["stage_scope_users"], {"snapshot_id": snapshot_id, "userids": userids})
    department_ids = sorted(scope.department_ids)
    conn.execute(
        statements["stage_scope_departments"], {"snapshot_id": snapshot_id, "department_ids": department_ids}
    )


def _staging_rows(snapshot: Snapshot) -> Iterator[tuple[str, Iterator[tuple[Any, ...]]]]:
    """Each staging table's rows in key order, so the same directory always gives the same bytes."""
    user_row = operator.itemgetter(*USER_COLUMNS)
    yield "departments", (snapshot.departments[key] for key in sorted(snapshot.departments))
    yield "users", map(user_row, map(snapshot.users.__getitem__, sorted(snapshot.users)))
    yield "user_departments", ((*key, *snapshot.memberships[key]) for key in sorted(snapshot.memberships))


def _column_types(conn: Any, table: str) -> list[int]:
    """The staging table's column types, in STAGING_COLUMNS order (binary COPY needs them)."""
    rows = conn.execute(
        sql.statements(STAGING)["column_types"],
        {"columns": list(STAGING_COLUMNS[table]), "table": f"wecom_staging.{table}"},
    ).fetchall()
    if len(rows) != len(STAGING_COLUMNS[table]):
        raise PipelineStateError(
            f"wecom_staging.{table} lacks columns this loader writes: apply the migrations first"
        )
    return [oid for (oid,) in rows]


class _JsonTextDumper(Dumper):
    """Binary jsonb from text that already is JSON (the snapshot keeps extattr and extra as JSON text).

    Registered by OID only, so it is used just where COPY's column types say jsonb."""

    format = Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode()


def _copy_data(
    cur: Any, rows: Iterator[tuple[Any, ...]], types: list[int], chunk: int = 5000
) -> Iterator[bytes]:
    """Rows as one binary COPY stream (signature, rows, trailer), in pieces of about ``chunk`` rows."""
    cur.adapters.register_dumper(None, _JsonTextDumper)
    buffer = io.BytesIO()
    with Copy(cur, binary=True, writer=FileWriter(buffer)) as copy:
        copy.set_types(types)
        for n, row in enumerate(rows, 1):
            copy.write_row(row)
            if n % chunk == 0 and buffer.tell():
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


def staged_snapshot(conn: Any, snapshot_id: int) -> dict[str, Any]:
    """The staged snapshot's record: digest, unchanged, partial, complete and its counts."""
    with conn.cursor() as cur:
        cur.execute(sql.statements(STAGING)["staged_snapshot"], {"snapshot_id": snapshot_id})
        row = cur.fetchone()
        if not row:
            raise PipelineStateError(
                f"staged snapshot {snapshot_id} does not exist (already applied or cleaned up): "
                "clear the fetch task too, so it stages a new one"
            )
        return dict(zip([c.name for c in cur.description], row, strict=True))


def drop_stale_snapshots(conn: Any, keep: int | None = None) -> None:
    """Staging left behind by failed runs (older than a day) is removed."""
    stale = conn.execute(sql.statements(STAGING)["stale_snapshots"], {"keep": keep}).fetchall()
    for (snapshot_id,) in stale:
        with conn.transaction():
            drop_snapshot(conn, snapshot_id)


def drop_snapshot(conn: Any, snapshot_id: int) -> None:
    """One snapshot's staging, its rows and its scope (inside the caller's transaction)."""
    statements = sql.statements(STAGING)
    for name in DROP_SNAPSHOT:
        conn.execute(statements[name], {"snapshot_id": snapshot_id})

"""Stage a snapshot with COPY, then apply it to the directory tables in one transaction."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import operator
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.copy import Copy, FileWriter
from psycopg.pq import Format

from wecom import sql
from wecom.directory.snapshot import DEPARTMENT_COLUMNS, MEMBERSHIP_COLUMNS, USER_COLUMNS, Snapshot
from wecom.errors import PipelineStateError
from wecom.warehouse import require_autocommit

log = logging.getLogger(__name__)

MERGE = "directory/merge.sql"
# Each statement's row count is the figure recorded in sync_runs under the name beside it; the two
# updates return a flag per row (restored, else changed) and feed two figures. History is closed before
# a table changes; removals run before inserts, since new rows are in the snapshot by definition. No
# statement reads a table another one has just filled, so none needs fresh statistics mid-merge.
APPLY_ORDER = (
    ("close_departments_history", None),
    ("update_departments", ("departments_restored", "departments_changed")),
    ("remove_departments", "departments_removed"), ("insert_departments", "departments_added"),
    ("close_users_history", None),
    ("update_users", ("users_restored", "users_changed")),
    ("remove_users", "users_removed"), ("insert_users", "users_added"),
    ("close_memberships_history", None),
    ("remove_memberships", "memberships_removed"), ("update_memberships", "memberships_changed"),
    ("insert_memberships", "memberships_added"),
)  # fmt: skip
STAGING_COLUMNS = {
    "departments": DEPARTMENT_COLUMNS,
    "users": USER_COLUMNS,
    "user_departments": MEMBERSHIP_COLUMNS,
}
# Versions the row digests: a loader that sums rows up differently never matches an old digest.
DIGEST_VERSION = b"wecom-directory-v4"
# A full sync that changes more than this share of rows stages everything: a scoped merge would not pay.
MAX_CHANGED_SHARE = 0.2
STAGING_KEYS = {
    "departments": "(snapshot_id, department_id)",
    "users": "(snapshot_id, userid)",
    "user_departments": "(snapshot_id, userid, department_id)",
}
DROP_SNAPSHOT = (
    "drop_snapshot",
    "drop_snapshot_departments",
    "drop_snapshot_users",
    "drop_snapshot_memberships",
    "drop_snapshot_scope_users",
    "drop_snapshot_scope_departments",
)
COUNTED = (
    "departments_fetched", "users_fetched", "memberships_fetched",
    "departments_added", "departments_changed", "departments_removed", "departments_restored",
    "users_added", "users_changed", "users_removed", "users_restored",
    "memberships_added", "memberships_changed", "memberships_removed",
)  # fmt: skip


class MassRemovalBlocked(PipelineStateError):
    """The snapshot would remove too many members at once; nothing was applied."""


@dataclass(frozen=True)
class RemovalGuard:
    max_share: float = 0.10
    allow_mass_removal: bool = False

    def check(self, removed: int, active: int) -> None:
        if self.allow_mass_removal or active == 0 or removed / active <= self.max_share:
            return
        raise MassRemovalBlocked(
            f"this sync would remove {removed} of {active} active members ({removed / active:.1%}), more than "
            f"the {self.max_share:.0%} guard; nothing was applied. If WeCom really lost them (check the app's "
            f"visible range first), trigger the DAG with the param allow_mass_removal: true"
        )


@dataclass(frozen=True)
class Scope:
    """What a partial snapshot speaks for: these members (lowercased userids) and departments, re-read
    from WeCom; everything else in the directory is left as it is."""

    userids: frozenset[str] = frozenset()
    department_ids: frozenset[int] = frozenset()


def last_applied_digest(conn: Any) -> str | None:
    row = conn.execute(
        "SELECT snapshot_digest FROM wecom.sync_runs WHERE status = 'succeeded' ORDER BY sync_run_id DESC LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def stage_snapshot(
    conn: Any,
    snapshot: Snapshot,
    dag_run_id: str | None = None,
    chunk: int = 5000,
    scope: Scope | None = None,
) -> int:
    """Stage a complete snapshot (or, with ``scope``, the ids callback events named); its id.

    A complete snapshot is summed up row by row first (``row_state``). Identical to the last applied
    one: recorded as ``unchanged``, nothing staged. Otherwise, when the rows of the last applied one are
    known, only the members and departments whose rows differ, appeared or disappeared are staged (a
    scoped snapshot that still speaks for the whole directory); a change too large for that, or a first
    sync, stages everything.
    """
    require_autocommit(conn, "stage_snapshot")
    if scope is not None:
        return _stage(conn, snapshot, dag_run_id, chunk, snapshot.counts(), scope=scope, complete=False)
    state = row_state(snapshot)
    digest = state_digest(state)
    counts = snapshot.counts()
    if digest == last_applied_digest(conn):
        snapshot_id = _record_snapshot(conn, dag_run_id, counts, digest=digest, unchanged=True)
        log.info("Snapshot %s is identical to the last applied one: nothing staged", snapshot_id)
        return snapshot_id
    changed = _changed_since_applied(conn, state)
    if changed is not None:
        log.info("Staging the changes only: %d member(s), %d department(s)", len(changed.userids),
                 len(changed.department_ids))  # fmt: skip
        snapshot = _subset(snapshot, changed)
    return _stage(conn, snapshot, dag_run_id, chunk, counts, scope=changed, complete=True, digest=digest,
                  state=encode_state(state))  # fmt: skip


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
    with conn.cursor() as cur, conn.cursor() as formatter, conn.transaction():
        snapshot_id = _record_snapshot(conn, dag_run_id, counts, digest=digest, partial=scope is not None,
                                       complete=complete, state=state)  # fmt: skip
        # Every staged row takes the snapshot id from this setting (the column's default).
        conn.execute("SELECT set_config('wecom.snapshot_id', %s, true)", (str(snapshot_id),))
        for table, rows in _staging_rows(snapshot):
            columns, types = ", ".join(STAGING_COLUMNS[table]), _column_types(conn, table)  # before the COPY
            with cur.copy(f"COPY wecom_staging.{table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
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
    params = {"dag_run_id": dag_run_id, "digest": digest, "unchanged": unchanged, "partial": partial,
              "complete": complete, "row_state": state, **counts}  # fmt: skip
    return conn.execute(sql.statements(MERGE)["record_snapshot"], params).fetchone()[0]


def _stage_scope(conn: Any, snapshot_id: int, scope: Scope) -> None:
    conn.execute(
        "INSERT INTO wecom_staging.scope_users (snapshot_id, userid_lower) SELECT %s, unnest(%s::text[])",
        (snapshot_id, sorted(u.lower() for u in scope.userids)),
    )
    conn.execute(
        "INSERT INTO wecom_staging.scope_departments (snapshot_id, department_id) SELECT %s, unnest(%s::bigint[])",
        (snapshot_id, sorted(scope.department_ids)),
    )


def row_state(snapshot: Snapshot) -> dict[str, bytes]:
    """An 8-byte digest of each department (key ``d<id>``) and of each member with its memberships
    (``u<lowercased userid>``, taken while fetching), in key order: what the next full sync compares
    with. Memberships count as their member's: a scoped merge's scope is members, not memberships."""
    blake2b = hashlib.blake2b
    state = {
        f"d{key}": blake2b(repr(snapshot.departments[key]).encode(), digest_size=8).digest()
        for key in sorted(snapshot.departments)
    }
    digests = snapshot.member_digests
    # A member added without a digest is unknown: a fresh random one makes it count as changed.
    state.update(("u" + key, digests.get(key) or os.urandom(8)) for key in sorted(snapshot.users))
    return state


def state_digest(state: dict[str, bytes]) -> str:
    """The snapshot's fingerprint: its rows' digests, in key order."""
    digest = hashlib.sha256(DIGEST_VERSION)
    for key, row in state.items():
        digest.update(key.encode() + b"\x00" + row)
    return digest.hexdigest()


def encode_state(state: dict[str, bytes]) -> bytes:
    """Row count, the digests, then the keys as JSON (keys may hold any character)."""
    return struct.pack(">I", len(state)) + b"".join(state.values()) + json.dumps(list(state)).encode()


def decode_state(blob: bytes) -> dict[str, bytes]:
    (count,) = struct.unpack_from(">I", blob)
    end = 4 + 8 * count
    digests = [blob[at : at + 8] for at in range(4, end, 8)]
    return dict(zip(json.loads(blob[end:]), digests, strict=True))


def _changed_since_applied(conn: Any, state: dict[str, bytes]) -> Scope | None:
    """The members and departments whose rows differ from the last applied complete snapshot's, or that
    callback events re-read since (their rows may no longer be that snapshot's); None when that snapshot's
    rows are not known or too much changed for a scoped merge to pay."""
    statements = sql.statements(MERGE)
    applied = conn.execute(statements["applied_state"]).fetchone()
    if applied is None:
        return None
    blob, applied_at = applied
    before = decode_state(blob)
    keys = [k for k, row in state.items() if before.get(k) != row]
    keys += before.keys() - state.keys()
    if len(keys) > MAX_CHANGED_SHARE * max(len(state), 1):
        return None
    userids: set[str] = set()
    departments: set[int] = set()
    for key in keys:
        if key[0] == "d":
            departments.add(int(key[1:]))
        else:
            userids.add(key[1:])
    for userid, new_userid, department_id in conn.execute(statements["touched_since"], {"since": applied_at}):
        userids.update(u.lower() for u in (userid, new_userid) if u)
        if department_id is not None:
            departments.add(department_id)
    return Scope(frozenset(userids), frozenset(departments))


def _subset(snapshot: Snapshot, scope: Scope) -> Snapshot:
    return Snapshot(
        departments={k: v for k, v in snapshot.departments.items() if k in scope.department_ids},
        users={k: v for k, v in snapshot.users.items() if k in scope.userids},
        memberships={k: v for k, v in snapshot.memberships.items() if k[0].lower() in scope.userids},
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
        "SELECT a.atttypid FROM unnest(%s::text[]) WITH ORDINALITY AS c(name, n)"
        " JOIN pg_attribute a ON a.attrelid = %s::regclass AND a.attname = c.name ORDER BY c.n",
        (list(STAGING_COLUMNS[table]), f"wecom_staging.{table}"),
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


def drop_stale_snapshots(conn: Any, keep: int | None = None) -> None:
    """Staging left behind by failed runs (older than a day) is removed."""
    stale = conn.execute(
        "SELECT snapshot_id FROM wecom_staging.snapshots WHERE fetched_at < now() - interval '1 day'"
        " AND snapshot_id IS DISTINCT FROM %s",
        (keep,),
    ).fetchall()
    for (snapshot_id,) in stale:
        with conn.transaction():
            _drop_snapshot(conn, snapshot_id)


def _drop_snapshot(conn: Any, snapshot_id: int) -> None:
    statements = sql.statements(MERGE)
    for name in DROP_SNAPSHOT:
        conn.execute(statements[name], {"snapshot_id": snapshot_id})


def apply_snapshot(
    conn: Any,
    snapshot_id: int,
    guard: RemovalGuard = RemovalGuard(),
    dag_run_id: str | None = None,
    kind: str = "full",
    events: list[int] | None = None,
    expect_events: bool = False,
) -> dict[str, Any]:
    """Merge one staged snapshot; record the run (``full`` or ``incremental``) in wecom.sync_runs whatever
    happens. A full run once callbacks are on (``expect_events``: the connection has a callback token; or
    events were ever applied) records its ``drift``: what events should have changed already."""
    require_autocommit(conn, "apply_snapshot")
    sync_run_id = conn.execute(
        "INSERT INTO wecom.sync_runs (dag_run_id, kind) VALUES (%s, %s) RETURNING sync_run_id",
        (dag_run_id, kind),
    ).fetchone()[0]
    try:
        drift = kind == "full" and (expect_events or _events_ever_applied(conn))
        result = _apply(conn, snapshot_id, sync_run_id, guard, events or [], drift)
    except Exception as exc:
        status = "blocked" if isinstance(exc, MassRemovalBlocked) else "failed"
        try:
            conn.execute(
                "UPDATE wecom.sync_runs SET status = %s, error = %s, finished_at = clock_timestamp()"
                " WHERE sync_run_id = %s",
                (status, str(exc)[:2000], sync_run_id),
            )
        except Exception:  # noqa: BLE001 - the connection itself may be what failed; keep the real error
            log.exception("Could not record sync run %s as %s", sync_run_id, status)
        raise
    assignments = ", ".join(f"{name} = %({name})s" for name in (*COUNTED, "rows_written", "snapshot_digest"))
    conn.execute(
        f"UPDATE wecom.sync_runs SET status = 'succeeded', finished_at = clock_timestamp(), {assignments},"  # noqa: S608
        " drift = %(drift)s WHERE sync_run_id = %(sync_run_id)s",
        {"drift": None, **result, "sync_run_id": sync_run_id},
    )
    return {**result, "sync_run_id": sync_run_id}


def _events_ever_applied(conn: Any) -> bool:
    return conn.execute(sql.statements(MERGE)["events_ever_applied"]).fetchone()[0]


def _apply(
    conn: Any, snapshot_id: int, sync_run_id: int, guard: RemovalGuard, events: list[int], drift: bool
) -> dict[str, Any]:
    with conn.transaction():
        conn.execute("SET LOCAL lock_timeout = '15min'")
        # Two applies never interleave, whatever started them (scheduler, a manual `dags test`...).
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('wecom.directory_apply', 0))")
        staged = _staged(conn, snapshot_id)
        if staged["unchanged"]:
            result = _confirm_unchanged(conn, snapshot_id, staged)
            result["drift"] = 0 if drift else None
            conn.execute(sql.statements(MERGE)["carry_row_state"], {"sync_run_id": sync_run_id})
        else:
            _analyze_staging(conn, scoped=staged["partial"])
            params = {"snapshot_id": snapshot_id, "sync_run_id": sync_run_id, "partial": staged["partial"]}
            result = merge(conn, params, guard)
            if drift:
                result["drift"] = conn.execute(sql.statements(MERGE)["drift"]).fetchone()[0]
            if staged["complete"]:  # fetched: the whole snapshot, even when only its changes were staged
                result.update(departments_fetched=staged["departments"], users_fetched=staged["users"],
                              memberships_fetched=staged["memberships"])  # fmt: skip
                statements = sql.statements(MERGE)
                conn.execute(statements["forget_row_state"])
                conn.execute(statements["save_row_state"], params)
            # The digest of the ids events named says nothing about the directory: no shortcut may rely on it.
            result["snapshot_digest"] = staged["digest"] if staged["complete"] else None
        if events:  # the callback events this merge applied, marked in its transaction
            conn.execute(
                sql.statements("callbacks/events.sql")["mark_processed"],
                {"events": events, "sync_run_id": sync_run_id},
            )
            conn.execute(
                "UPDATE wecom.sync_runs SET events_applied = %s WHERE sync_run_id = %s",
                (len(events), sync_run_id),
            )
        _drop_snapshot(conn, snapshot_id)
    log.info("Applied snapshot %s: %s", snapshot_id, result)
    return result


def _staged(conn: Any, snapshot_id: int) -> dict[str, Any]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT digest, unchanged, partial, complete, departments, users, memberships"
            " FROM wecom_staging.snapshots WHERE snapshot_id = %s",
            (snapshot_id,),
        )
        row = cur.fetchone()
        if not row:
            raise PipelineStateError(
                f"staged snapshot {snapshot_id} does not exist (already applied or cleaned up): "
                "clear the fetch task too, so it stages a new one"
            )
        return dict(zip([c.name for c in cur.description], row, strict=True))


def _confirm_unchanged(conn: Any, snapshot_id: int, staged: dict[str, Any]) -> dict[str, Any]:
    """A snapshot found identical at staging time applies as nothing, if it still matches the latest sync."""
    if staged["digest"] != last_applied_digest(conn):
        raise PipelineStateError(
            f"snapshot {snapshot_id} was identical to a sync that is no longer the latest: "
            "clear the fetch task too, so it stages a complete snapshot"
        )
    result = dict.fromkeys(COUNTED, 0)
    result.update(
        departments_fetched=staged["departments"],
        users_fetched=staged["users"],
        memberships_fetched=staged["memberships"],
        rows_written=0,
        snapshot_digest=staged["digest"],
    )
    log.info("Snapshot %s is unchanged since the last sync: nothing to apply", snapshot_id)
    return result


def _analyze_staging(conn: Any, scoped: bool) -> None:
    """Fresh statistics for fresh staging (and, for a scoped merge, for directory tables filled since
    autovacuum last came by), so the merge's joins are planned for their sizes. A first sync has nothing
    to join against: every plan is a scan of staging, whatever the statistics say."""
    if conn.execute(
        "SELECT EXISTS (SELECT 1 FROM wecom.users) OR EXISTS (SELECT 1 FROM wecom.departments)"
    ).fetchone()[0]:
        for table, columns in STAGING_KEYS.items():
            conn.execute(f"ANALYZE wecom_staging.{table} {columns}")
        if scoped:  # it starts from the few ids in scope: only with real sizes is that the plan
            conn.execute("ANALYZE wecom_staging.scope_users, wecom_staging.scope_departments")
            for (table,) in conn.execute(sql.statements(MERGE)["stale_statistics"]).fetchall():
                conn.execute(f"ANALYZE wecom.{table}")


def merge(conn: Any, params: dict[str, Any], guard: RemovalGuard) -> dict[str, Any]:
    """The history-keeping merge of one staged snapshot, inside the caller's transaction; returns counts."""
    # A scoped snapshot keeps its ``-- scoped`` lines: plain semi-joins, so the plan starts from its few ids.
    statements = sql.statements(MERGE) if params["partial"] else whole_statements()
    with conn.cursor() as cur:
        cur.execute(statements["fetched"], params)
        result = dict(zip([c.name for c in cur.description], cur.fetchone(), strict=True))
        cur.execute(statements["removal_check"], params)
        active, removed = cur.fetchone()
    guard.check(removed, active)
    written = 0
    for name, figure in APPLY_ORDER:
        cursor = conn.execute(statements[name], params)
        count = cursor.rowcount
        written += count
        if isinstance(figure, tuple):
            restored = sum(1 for (restoring,) in cursor.fetchall() if restoring)
            result[figure[0]], result[figure[1]] = restored, count - restored
        elif figure:
            result[figure] = count
    result["rows_written"] = written
    return result


@functools.cache
def whole_statements() -> dict[str, str]:
    """The merge for a snapshot staged whole: everything is in scope, so the ``-- scoped`` lines go."""
    return {
        name: "\n".join(line for line in text.splitlines() if not line.endswith("-- scoped"))
        for name, text in sql.statements(MERGE).items()
    }

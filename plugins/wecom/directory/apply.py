"""Apply one staged snapshot in one transaction, and record the run in wecom.sync_runs whatever happens."""

from __future__ import annotations

import logging
from typing import Any

from wecom import sql
from wecom.directory.merge import MassRemovalBlocked, RemovalGuard, analyze_staging, merge
from wecom.directory.staging import drop_snapshot, staged_snapshot
from wecom.directory.state import carry_row_state, last_applied_digest, save_row_state
from wecom.errors import PipelineStateError
from wecom.warehouse import require_autocommit

log = logging.getLogger(__name__)

RUNS = "directory/runs.sql"
EVENTS = "callbacks/events.sql"
# The figures of a sync recorded in wecom.sync_runs (runs.sql run_succeeded), besides rows_written.
COUNTED = (
    "departments_fetched",
    "users_fetched",
    "memberships_fetched",
    "departments_added",
    "departments_changed",
    "departments_removed",
    "departments_restored",
    "users_added",
    "users_changed",
    "users_removed",
    "users_restored",
    "memberships_added",
    "memberships_changed",
    "memberships_removed",
)
# The default guard: at most a tenth of the active members removed at once.
NO_MASS_REMOVAL = RemovalGuard()


def apply_snapshot(
    conn: Any,
    snapshot_id: int,
    guard: RemovalGuard = NO_MASS_REMOVAL,
    dag_run_id: str | None = None,
    kind: str = "full",
    events: list[int] | None = None,
    expect_events: bool = False,
) -> dict[str, Any]:
    """Merge one staged snapshot; record the run (``full`` or ``incremental``) in wecom.sync_runs whatever
    happens. A full run once callbacks are on (``expect_events``: the connection has a callback token; or
    events were ever applied) records its ``drift``: what events should have changed already."""
    require_autocommit(conn, "apply_snapshot")
    statements = sql.statements(RUNS)
    start = {"dag_run_id": dag_run_id, "kind": kind}
    sync_run_id = conn.execute(statements["start_run"], start).fetchone()[0]
    try:
        drift = kind == "full" and _synced_before(conn) and (expect_events or _events_ever_applied(conn))
        result = _apply(conn, snapshot_id, sync_run_id, guard, events or [], drift)
    except Exception as exc:
        _record_failure(conn, sync_run_id, exc)
        raise
    conn.execute(statements["run_succeeded"], {"drift": None, **result, "sync_run_id": sync_run_id})
    return {**result, "sync_run_id": sync_run_id}


def _synced_before(conn: Any) -> bool:
    return conn.execute(sql.statements(RUNS)["synced_before"]).fetchone()[0]


def _events_ever_applied(conn: Any) -> bool:
    return conn.execute(sql.statements(RUNS)["events_ever_applied"]).fetchone()[0]


def _record_failure(conn: Any, sync_run_id: int, exc: Exception) -> None:
    """The run failed, or the removal guard blocked it; the error is kept, cut to 2000 characters."""
    status = "blocked" if isinstance(exc, MassRemovalBlocked) else "failed"
    params = {"status": status, "error": str(exc)[:2000], "sync_run_id": sync_run_id}
    try:
        conn.execute(sql.statements(RUNS)["run_failed"], params)
    except Exception:  # noqa: BLE001 - the connection itself may be what failed; keep the real error
        log.exception("Could not record sync run %s as %s", sync_run_id, status)


def _apply(
    conn: Any, snapshot_id: int, sync_run_id: int, guard: RemovalGuard, events: list[int], drift: bool
) -> dict[str, Any]:
    statements = sql.statements(RUNS)
    with conn.transaction():
        conn.execute(statements["lock_timeout"])
        conn.execute(statements["apply_lock"])
        staged = staged_snapshot(conn, snapshot_id)
        if staged["unchanged"]:
            result = _confirm_unchanged(conn, snapshot_id, staged)
            result["drift"] = 0 if drift else None
            carry_row_state(conn, sync_run_id)
        else:
            result = _merge(conn, snapshot_id, sync_run_id, staged, guard, drift)
        if events:  # the callback events this merge applied, marked in its transaction
            _mark_processed(conn, events, sync_run_id)
        drop_snapshot(conn, snapshot_id)
    log.info("Applied snapshot %s: %s", snapshot_id, result)
    return result


def _merge(
    conn: Any, snapshot_id: int, sync_run_id: int, staged: dict[str, Any], guard: RemovalGuard, drift: bool
) -> dict[str, Any]:
    """The merge of a snapshot that changes something, with its drift and, complete, its row state."""
    analyze_staging(conn, scoped=staged["partial"])
    params = {"snapshot_id": snapshot_id, "sync_run_id": sync_run_id, "partial": staged["partial"]}
    result = merge(conn, params, guard)
    if drift:
        result["drift"] = conn.execute(sql.statements(RUNS)["drift"]).fetchone()[0]
    if staged["complete"]:  # fetched: the whole snapshot, even when only its changes were staged
        result.update(
            departments_fetched=staged["departments"],
            users_fetched=staged["users"],
            memberships_fetched=staged["memberships"],
        )
        save_row_state(conn, snapshot_id, sync_run_id)
    # The digest of the ids events named says nothing about the directory: no shortcut may rely on it.
    result["snapshot_digest"] = staged["digest"] if staged["complete"] else None
    return result


def _mark_processed(conn: Any, events: list[int], sync_run_id: int) -> None:
    conn.execute(sql.statements(EVENTS)["mark_processed"], {"events": events, "sync_run_id": sync_run_id})
    conn.execute(
        sql.statements(RUNS)["record_events_applied"],
        {"events_applied": len(events), "sync_run_id": sync_run_id},
    )


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

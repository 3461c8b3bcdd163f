"""What the wecom_directory_sync DAG's tasks do; each takes connection ids and plain values."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowSkipException

from wecom import lineage, warehouse
from wecom.assets import DIRECTORY
from wecom.directory import events
from wecom.directory.apply import COUNTED, apply_snapshot
from wecom.directory.merge import RemovalGuard
from wecom.directory.snapshot import fetch_snapshot
from wecom.directory.staging import drop_stale_snapshots, stage_snapshot
from wecom.hooks import DEFAULT_CONN_ID, WeComHook

# Each directory table, and the prefix of the sync figures that count the rows written to it.
WRITTEN = (
    ("wecom.departments", "departments_"),
    ("wecom.users", "users_"),
    ("wecom.user_departments", "memberships_"),
)


def migrate(warehouse_conn_id: str = warehouse.WAREHOUSE_CONN_ID) -> list[str]:
    """Bring the warehouse schema up to date (idempotent); returns the migrations applied now."""
    with warehouse.connect(warehouse_conn_id) as conn:
        return warehouse.apply_migrations(conn)


def fetch(
    wecom_conn_id: str = DEFAULT_CONN_ID,
    warehouse_conn_id: str = warehouse.WAREHOUSE_CONN_ID,
    concurrency: int = 4,
    dag_run_id: str | None = None,
) -> dict[str, Any]:
    """Fetch a complete snapshot and stage it; returns its id and counts (small, for XCom)."""
    hook = WeComHook(wecom_conn_id)
    snapshot = fetch_snapshot(hook, concurrency=concurrency)
    with warehouse.connect(warehouse_conn_id) as conn:
        snapshot_id = stage_snapshot(conn, snapshot, dag_run_id)
        drop_stale_snapshots(conn, keep=snapshot_id)
    counts = snapshot.counts()
    corp = hook.settings.corp_id
    lineage.report(
        hook,
        inputs=[
            (lineage.wecom_api(corp, "department/list"), counts["departments"]),
            (lineage.wecom_api(corp, "user/list"), counts["users"]),
        ],
    )
    return {"snapshot_id": snapshot_id, **counts}


def removal_guard(params: dict[str, Any]) -> RemovalGuard:
    """The run's removal guard, from its params ``max_removal_share`` and ``allow_mass_removal``."""
    return RemovalGuard(
        max_share=float(params.get("max_removal_share", 0.10)),
        allow_mass_removal=bool(params.get("allow_mass_removal", False)),
    )


def apply(
    snapshot_id: int,
    params: dict[str, Any] | None = None,
    dag_run_id: str | None = None,
    warehouse_conn_id: str = warehouse.WAREHOUSE_CONN_ID,
    wecom_conn_id: str = DEFAULT_CONN_ID,
) -> dict[str, Any]:
    """Merge the staged snapshot in one transaction; returns the counts recorded in sync_runs. With a
    callback token in the connection, callbacks are expected: the run's drift is recorded even before
    any event arrived (a wrong callback URL shows as every change being drift)."""
    expect_events = bool(WeComHook(wecom_conn_id).settings.callback_token)
    with warehouse.connect(warehouse_conn_id) as conn:
        result = apply_snapshot(
            conn, snapshot_id, removal_guard(params or {}), dag_run_id, expect_events=expect_events
        )
    written = {
        table: sum(v for k, v in result.items() if k.startswith(prefix) and not k.endswith("_fetched"))
        for table, prefix in WRITTEN
    }
    lineage.report(
        apply_snapshot,
        outputs=[(lineage.warehouse_table(warehouse_conn_id, t), n) for t, n in written.items()],
    )
    return result


def apply_events(
    params: dict[str, Any],
    dag_run_id: str | None = None,
    wecom_conn_id: str = DEFAULT_CONN_ID,
    warehouse_conn_id: str = warehouse.WAREHOUSE_CONN_ID,
) -> dict[str, Any]:
    """Re-read and merge what the waiting contact events name (an incremental sync)."""
    with warehouse.connect_current(warehouse_conn_id) as conn:
        return events.apply_events(WeComHook(wecom_conn_id), conn, removal_guard(params), dag_run_id)


def announce(result: dict[str, Any], context: Any) -> dict[str, Any]:
    """An asset event for each directory table when the sync changed something, its counts as the extra;
    skipped (no event) when nothing changed."""
    if not result.get("rows_written"):
        raise AirflowSkipException("the directory is unchanged: no asset event")
    extra = {name: result[name] for name in ("sync_run_id", "rows_written", *COUNTED) if name in result}
    for asset in DIRECTORY:
        context["outlet_events"][asset].extra = extra
    return extra

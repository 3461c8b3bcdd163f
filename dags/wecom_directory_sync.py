"""
### WeCom directory sync

Copies the WeCom org directory (departments, members, memberships) into the warehouse
(`wecom_warehouse`, schema `wecom`), keeping history and an audit row per run in `wecom.sync_runs`.

1. **migrate_schema** applies the numbered migrations in `include/sql/migrations` (idempotent), so an empty
   database works with nothing but the two connections.
2. **fetch_directory** (pool `wecom_api`) lists every visible department, then each department's members with
   bounded concurrency, and stages the snapshot with `COPY`. One department that cannot be fetched fails the
   run: a partial snapshot is never applied.
3. **apply_directory** merges the snapshot in one transaction: new rows inserted, changed rows updated,
   vanished members and departments soft-deleted (`deleted_at`), returning ones restored, history versioned.
   An unchanged directory writes nothing.

4. **announce_changes** emits an Airflow asset event for `wecom.departments`, `wecom.users` and
   `wecom.user_departments` (`wecom.assets.DIRECTORY`) with the run's counts, when something changed; it is
   skipped when nothing did. Schedule your own DAGs on them: `schedule=DIRECTORY`.

**Removal guard**: a run that would remove more than `max_removal_share` of the active members stops without
applying anything (`sync_runs.status = 'blocked'`). When the removal is real, trigger with
`allow_mass_removal: true`.

Schedule: daily at 06:17 Asia/Shanghai; set `WECOM_DIRECTORY_SYNC_CRON` in the scheduler's environment to
change it.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG, CronTriggerTimetable, Param, get_current_context, task

from wecom.assets import DIRECTORY
from wecom.dag_defaults import START_DATE, TIMEZONE, task_defaults
from wecom.directory import tasks

with DAG(
    dag_id="wecom_directory_sync",
    schedule=CronTriggerTimetable(
        os.environ.get("WECOM_DIRECTORY_SYNC_CRON", "17 6 * * *"), timezone=TIMEZONE
    ),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["wecom", "directory"],
    default_args=task_defaults(retries=2, retry_delay=timedelta(minutes=2)),
    params={
        "allow_mass_removal": Param(
            False, type="boolean", description="Apply even if more than max_removal_share of members vanish."
        ),
        "max_removal_share": Param(
            0.10,
            type="number",
            minimum=0,
            maximum=1,
            description="Share of active members one run may remove.",
        ),
        "concurrency": Param(
            4,
            type="integer",
            minimum=1,
            maximum=16,
            description="Parallel user/list calls (WeCom answers 45033 to too many).",
        ),
    },
) as dag:

    @task
    def migrate_schema() -> list[str]:
        return tasks.migrate()

    @task(pool="wecom_api")
    def fetch_directory(params: dict | None = None, run_id: str | None = None) -> dict:
        return tasks.fetch(concurrency=int(params["concurrency"]), dag_run_id=run_id)

    @task
    def apply_directory(snapshot: dict, params: dict | None = None, run_id: str | None = None) -> dict:
        return tasks.apply(snapshot["snapshot_id"], params, dag_run_id=run_id)

    @task(outlets=DIRECTORY)
    def announce_changes(result: dict) -> dict:
        return tasks.announce(result, get_current_context())

    snapshot = fetch_directory()
    migrate_schema() >> snapshot
    announce_changes(apply_directory(snapshot))

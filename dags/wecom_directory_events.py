"""
### WeCom directory events

Keeps the directory fresh between daily syncs: WeCom pushes contact changes to the callback receiver
(`/wecom/callback`), which stores them in `wecom.callback_events`. This DAG runs when contact events wait
there, and only then: the inbox asset `wecom.callback_events.change_contact` carries an `AssetWatcher`
whose trigger (in the triggerer) hears the receiver's NOTIFY at once, looks at the inbox every 10 s in case a
notice was lost, and fires again after a minute if events still wait. A quiet org makes no runs. Each run
takes the waiting
`change_contact` events, **re-reads exactly the members and departments they name** (`user/get`,
`department/get`; an id WeCom no longer knows is a removal) and applies them through the same
history-keeping merge as the full sync, in one transaction that also marks the events processed
(`wecom.sync_runs` row of kind `incremental`). Order and duplicates do not matter: the result is WeCom's
current state for each id. Nothing waiting: nothing happens.

**announce_changes** emits the directory assets' events when something changed, as the full sync does.
The daily `wecom_directory_sync` stays the reconciler; its `drift` in `wecom.sync_runs` counts what events
should have changed already (0 when none was lost). Params as the full sync's removal guard.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param, get_current_context, task

from wecom.assets import CONTACT_EVENTS, DIRECTORY
from wecom.dag_defaults import START_DATE, task_defaults
from wecom.directory import tasks

with DAG(
    dag_id="wecom_directory_events",
    schedule=[CONTACT_EVENTS],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["wecom", "directory"],
    default_args=task_defaults(retries=3, retry_delay=timedelta(seconds=20)),
    params={
        "allow_mass_removal": Param(False, type="boolean", description="Apply even a burst of removals."),
        "max_removal_share": Param(
            0.10,
            type="number",
            minimum=0,
            maximum=1,
            description="Share of active members one run may remove.",
        ),
    },
) as dag:

    @task(pool="wecom_api")
    def apply_contact_events(params: dict | None = None, run_id: str | None = None) -> dict:
        return tasks.apply_events(params, dag_run_id=run_id)

    @task(outlets=DIRECTORY)
    def announce_changes(result: dict) -> dict:
        return tasks.announce(result, get_current_context())

    announce_changes(apply_contact_events())

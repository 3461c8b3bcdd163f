"""The DAG folder imports cleanly, and Airflow sees the project as a provider with its connection forms."""

from __future__ import annotations

import os
import subprocess
import sys

from airflow.sdk import CronDataIntervalTimetable, CronTriggerTimetable
from conftest import ROOT

from wecom.provider import get_provider_info


def test_dag_folder_imports_without_errors_and_holds_the_three_dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=ROOT / "dags")
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"wecom_directory_sync", "interview_daily_digest", "interview_reminders"}
    digest = bag.dags["interview_daily_digest"]
    assert isinstance(digest.timetable, CronTriggerTimetable)
    assert set(digest.params) == {"day", "dry_run", "only_users", "language", "leader_summary"}
    reminders = bag.dags["interview_reminders"]
    assert isinstance(reminders.timetable, CronDataIntervalTimetable)  # each run owns a real interval
    for dag in bag.dags.values():
        assert dag.doc_md and dag.catchup is False
        minutes = dag.timetable.expression.split()[0]
        assert minutes not in ("0", "30", "*/10", "*/30") and not minutes.startswith(
            "0"
        )  # WeCom: avoid :00 and :30


def test_sending_tasks_run_in_the_wecom_api_pool():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=ROOT / "dags")
    pools = {(dag_id, t.task_id): t.pool for dag_id, dag in bag.dags.items() for t in dag.tasks}
    assert pools[("wecom_directory_sync", "fetch_directory")] == "wecom_api"
    assert pools[("interview_daily_digest", "send_digests")] == "wecom_api"
    assert pools[("interview_reminders", "send_due_reminders")] == "wecom_api"


def test_airflow_lists_the_provider_and_its_connection_types():
    env = {**os.environ}
    airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
    providers = subprocess.run(
        [airflow, "providers", "list"], capture_output=True, text=True, env=env, check=True
    )
    assert "wecom-airflow" in providers.stdout
    hooks = subprocess.run(
        [airflow, "providers", "hooks"], capture_output=True, text=True, env=env, check=True
    )
    assert "wecom.hooks.WeComHook" in hooks.stdout and "wecom.webhook.WeComWebhookHook" in hooks.stdout


def test_connection_form_metadata_is_registered():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    behaviours = manager.field_behaviours
    assert behaviours["wecom"]["relabeling"] == {
        "host": "API base URL",
        "login": "Corp ID",
        "password": "App secret",
    }
    assert "password" in behaviours["wecom_webhook"]["relabeling"]
    widgets = manager.connection_form_widgets
    assert {"extra__wecom__agent_id", "extra__wecom__read_timeout"} <= set(widgets)
    info = get_provider_info()
    assert info["notifications"] == ["wecom.notifications.WeComNotifier"]

"""The DAG folder imports cleanly, and Airflow sees the project as a provider with its connection forms."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from airflow.sdk import CronDataIntervalTimetable, CronTriggerTimetable
from conftest import ROOT

from wecom.provider import get_provider_info


def test_dag_folder_imports_without_errors_and_holds_the_six_dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=ROOT / "dags")
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {
        "wecom_directory_sync",
        "wecom_directory_events",
        "interview_daily_digest",
        "interview_reminders",
        "interview_answers",
        "wecom_questions",
    }
    digest = bag.dags["interview_daily_digest"]
    assert isinstance(digest.timetable, CronTriggerTimetable)
    assert set(digest.params) == {
        "day", "dry_run", "only_users", "language", "leader_summary",
        "require_approval", "approvers", "approval_timeout_minutes", "on_approval_timeout",
    }  # fmt: skip
    assert digest.params["require_approval"] is False  # opt-in: today's behaviour unchanged
    reminders = bag.dags["interview_reminders"]
    assert {"reminder_style", "escalate_minutes"} <= set(reminders.params)
    assert isinstance(reminders.timetable, CronDataIntervalTimetable)  # each run owns a real interval
    for dag in bag.dags.values():
        assert dag.doc_md and dag.catchup is False
        if dag.dag_id in ("wecom_directory_events", "interview_answers"):
            # only when the inbox holds its kind of event: no clock at all
            (asset,) = dag.timetable.asset_condition.objects
            kind = "change_contact" if dag.dag_id == "wecom_directory_events" else "template_card_event"
            assert asset.name == f"wecom.callback_events.{kind}" and dag.max_active_runs == 1
            (watcher,) = asset.watchers
            assert watcher.trigger.serialize()[0] == "wecom.triggers.InboxTrigger"
            assert watcher.trigger.serialize()[1]["events"] == [kind]
            continue
        if dag.dag_id == "wecom_questions":  # card taps, or a question settled in Airflow: no clock either
            watched = {
                a.name: a.watchers[0].trigger.serialize()[0] for a in dag.timetable.asset_condition.objects
            }
            assert watched == {
                "wecom.callback_events.template_card_event": "wecom.triggers.InboxTrigger",
                "wecom.questions.settled_elsewhere": "wecom.triggers.QuestionsTrigger",
            }
            assert dag.max_active_runs == 1
            continue
        minutes = dag.timetable.expression.split()[0]
        assert minutes not in ("0", "30", "*/10", "*/30") and not minutes.startswith(
            "0"
        )  # WeCom: avoid :00 and :30


def test_every_param_left_at_its_default_passes_the_trigger_forms_validation():
    from airflow.dag_processing.dagbag import DagBag
    from conftest import assert_form_takes_the_defaults

    for dag in DagBag(dag_folder=ROOT / "dags").dags.values():
        assert_form_takes_the_defaults(dag.params, dag.dag_id)


def test_every_task_of_every_dag_alerts_on_its_final_failure(monkeypatch):
    """One place (``dag_defaults.task_defaults``) gives every task its failure alert: a DAG that builds its
    default_args by hand would lose it, as two did."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.standard.operators.hitl import HITLOperator

    from wecom.notifications import WeComNotifier, WeComWebhookNotifier

    monkeypatch.setenv("WECOM_ALERT_USERS", "oncall1|oncall2")
    monkeypatch.setenv("WECOM_ALERT_WEBHOOK_CONN_ID", "ops_robot")
    bag = DagBag(dag_folder=ROOT / "dags")
    assert bag.import_errors == {}
    for dag in bag.dags.values():
        for task in dag.tasks:
            kinds = sorted(type(c).__name__ for c in task.on_failure_callback or [])
            assert kinds == sorted([WeComNotifier.__name__, WeComWebhookNotifier.__name__]), (
                dag.dag_id,
                task,
            )
            if isinstance(task, HITLOperator):  # a retry would erase the answer and ask again
                assert task.retries == 0, (dag.dag_id, task.task_id)
                continue
            assert task.retries >= 2 and task.retry_exponential_backoff, (dag.dag_id, task.task_id)


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
    assert {"extra__wecom__agent_id", "extra__wecom__read_timeout", "extra__wecom_webhook__proxy"} <= set(
        widgets
    )
    info = get_provider_info()
    assert info["notifications"] == [
        "wecom.notifications.WeComNotifier",
        "wecom.notifications.WeComWebhookNotifier",
    ]
    assert {m for h in info["hooks"] for m in h["python-modules"]} == {"wecom.hooks", "wecom.webhook"}


# A distinctive value for each kind of extra, and what the hook must make of it.
SAMPLES = {"number": ("7.5", 7.5), "integer": ("7", 7), "string": ("memory", "memory")}


@pytest.mark.parametrize("conn_type", ["wecom", "wecom_webhook"])
def test_the_form_declares_exactly_the_extras_the_hook_reads_and_hides_only_what_it_ignores(conn_type):
    """Each declared extra, set in a connection, reaches the hook's settings; every knob the settings take
    from the extra is declared; hidden fields are ones the hook never reads."""
    from airflow.sdk import Connection

    from wecom.hooks import WeComSettings
    from wecom.webhook import WebhookSettings

    spec = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}[conn_type]
    settings_class = WeComSettings if conn_type == "wecom" else WebhookSettings
    declared = spec["conn-fields"]
    assert set(declared) == set(settings_class.extra_fields())
    extra = {name: SAMPLES[field["schema"]["type"][0]][0] for name, field in declared.items()}
    fields = {"conn_id": "c", "conn_type": conn_type, "host": "http://h:1", "login": "corp"}
    conn = Connection(**fields, password="secret-value", extra=json.dumps(extra))
    settings = settings_class.from_connection(conn)
    for name, field in declared.items():
        assert getattr(settings, name) == SAMPLES[field["schema"]["type"][0]][1], name
    # Hidden fields are ignored: a connection that sets them reads the same.
    hidden = spec["ui-field-behaviour"]["hidden-fields"]
    noisy = Connection(**fields, password="secret-value", extra=json.dumps(extra), schema="ftp", port=1)
    assert set(hidden) == {"schema", "port"} | ({"login"} if conn_type == "wecom_webhook" else set())
    assert settings_class.from_connection(noisy) == settings


@pytest.mark.parametrize("conn_type", ["wecom", "wecom_webhook"])
def test_the_form_shows_the_defaults_the_hook_applies(conn_type):
    """Every form field's default (none where the form shows none) is what the hook uses when the extra leaves
    the field out, and its label and type are declared: the form cannot drift from the settings."""
    from airflow.sdk import Connection

    from wecom.hooks import WeComSettings
    from wecom.webhook import WebhookSettings

    spec = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}[conn_type]
    settings_class = WeComSettings if conn_type == "wecom" else WebhookSettings
    bare = Connection(
        conn_id="c", conn_type=conn_type, host="http://h:1", login="corp", password="secret-value"
    )
    settings = settings_class.from_connection(bare)
    for name, field in spec["conn-fields"].items():
        assert field["label"] and field["schema"]["type"][0] in SAMPLES, name
        assert field["schema"].get("default") == getattr(settings, name), name
    form = {name: field["schema"].get("default") for name, field in spec["conn-fields"].items()}
    expected = (
        {"read_timeout": 30.0, "max_retries": 3}
        if conn_type == "wecom"
        else {"read_timeout": 15.0, "max_retries": 1}
    )
    assert {name: form[name] for name in expected} == expected

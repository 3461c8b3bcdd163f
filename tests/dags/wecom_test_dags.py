"""Small DAGs that exercise the operator and the notifier through real runs (tests only)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task

from wecom.assets import DIRECTORY
from wecom.notifications import WeComNotifier, WeComWebhookNotifier
from wecom.operators import WeComSendMessageOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")

with DAG("wecom_operator_test", schedule=None, start_date=START, params={"users": Param("", type="string")}):
    WeComSendMessageOperator(task_id="send", content="**上线完成** {{ ds }}", users="{{ params.users }}")

with DAG("wecom_operator_text", schedule=None, start_date=START, params={"users": Param("", type="string")}):
    WeComSendMessageOperator(task_id="send", msgtype="text", content="hello", users="{{ params.users }}")

with DAG(
    "wecom_notifier_test", schedule=None, start_date=START, params={"on_call": Param("", type="string")}
):
    notifier = WeComNotifier(users="{{ params.on_call }}")

    @task(on_failure_callback=[notifier, notifier])  # one failure, the callback fires twice
    def explode():
        raise ValueError("warehouse unreachable\nsecond line is not in the alert")

    explode()

with DAG("wecom_robot_alert", schedule=None, start_date=START):

    @task(on_failure_callback=WeComWebhookNotifier(wecom_webhook_conn_id="ops_robot"))
    def explode_loudly():
        raise RuntimeError("boom")

    explode_loudly()

with DAG("wecom_directory_consumer", schedule=DIRECTORY, start_date=START):
    # An analyst's DAG: runs when the directory changed (README, "Build on the directory").

    @task
    def report_changes(**context):
        return [event.extra for events in context["triggering_asset_events"].values() for event in events]

    report_changes()

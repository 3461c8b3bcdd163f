"""WeComNotifier: task failure alerts to people (app message) or a group (robot), once per failure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseNotifier

from wecom import warehouse
from wecom.delivery import Claimant, Outgoing, Sender
from wecom.hooks import SendResult, WeComHook
from wecom.messages import ROBOT_MARKDOWN_LIMIT, Recipients, markdown
from wecom.webhook import WeComWebhookHook


def _first_line(error: Any) -> str:
    text = str(error or "").strip().splitlines()
    return text[0][:300] if text else "(no error message)"


def alert_markdown(context: dict[str, Any]) -> str:
    """Deterministic for one failure (no clock in it): a second firing is byte-identical."""
    ti = context["ti"]
    state = getattr(ti, "state", None)
    heading = "任务重试中 Task retrying" if str(state).endswith("up_for_retry") else "任务失败 Task failed"
    return "\n".join(
        [
            f'## <font color="warning">{heading}</font>',
            f"> DAG: **{ti.dag_id}**",
            f"> Task: **{ti.task_id}**" + (f" [{ti.map_index}]" if getattr(ti, "map_index", -1) >= 0 else ""),
            f"> Run: {ti.run_id}",
            f"> Try: {ti.try_number}",
            f"> Error: {_first_line(context.get('exception'))}",
            f"[View the log]({getattr(ti, 'log_url', '') or ''})",
        ]
    )


class WeComNotifier(BaseNotifier):
    """Use as ``on_failure_callback``. Alerts on final failure only unless ``alert_on_retry``.

    Sends to ``users``/``departments`` as an app message, or to a group robot when
    ``webhook_conn_id`` is given. The ledger key names the task attempt, so a callback that fires
    twice alerts once.
    """

    template_fields = ("users", "departments")

    def __init__(
        self,
        *,
        users: Sequence[str] | str = (),
        departments: Sequence[str | int] | str = (),
        webhook_conn_id: str | None = None,
        wecom_conn_id: str = WeComHook.default_conn_name,
        warehouse_conn_id: str = warehouse.WAREHOUSE_CONN_ID,
        alert_on_retry: bool = False,
    ) -> None:
        super().__init__()
        self.users = users
        self.departments = departments
        self.webhook_conn_id = webhook_conn_id
        self.wecom_conn_id = wecom_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.alert_on_retry = alert_on_retry

    def notify(self, context: dict[str, Any]) -> None:
        ti = context["ti"]
        if str(getattr(ti, "state", "")).endswith("up_for_retry") and not self.alert_on_retry:
            self.log.info("Task will retry; no alert (alert_on_retry is off)")
            return
        key = f"alert:{ti.dag_id}:{ti.task_id}:{ti.run_id}:{getattr(ti, 'map_index', -1)}:{ti.try_number}"
        content = alert_markdown(context)
        if self.webhook_conn_id:
            robot = WeComWebhookHook(self.webhook_conn_id)
            robot_payload = markdown(content, ROBOT_MARKDOWN_LIMIT)
            messages = [Outgoing(key, f"robot:{self.webhook_conn_id}", robot_payload, to={})]

            def transport(m: Outgoing) -> SendResult:
                robot.send(m.payload)
                return SendResult(None, [], [], [], [])

            hook = None
        else:
            chunks = Recipients.of(self.users, self.departments).chunks()
            messages = [
                Outgoing(key, f"chunk:{i}", markdown(content), to=to) for i, to in enumerate(chunks, 1)
            ]
            transport, hook = None, WeComHook(self.wecom_conn_id)
        with warehouse.connect_current(self.warehouse_conn_id) as conn:
            summary = Sender(hook, conn, Claimant.from_context(context), transport=transport).send(messages)
        self.log.info("WeCom alert: %s", "sent" if summary.sent else "already sent for this failure")


def alert_callbacks() -> list[WeComNotifier]:
    """Failure alerts configured by the deployment: ``WECOM_ALERT_USERS`` ("a|b") for app messages
    and/or ``WECOM_ALERT_WEBHOOK_CONN_ID`` for a group robot. None when neither is set."""
    import os

    callbacks = []
    if os.environ.get("WECOM_ALERT_USERS"):
        callbacks.append(WeComNotifier(users=os.environ["WECOM_ALERT_USERS"]))
    if os.environ.get("WECOM_ALERT_WEBHOOK_CONN_ID"):
        callbacks.append(WeComNotifier(webhook_conn_id=os.environ["WECOM_ALERT_WEBHOOK_CONN_ID"]))
    return callbacks

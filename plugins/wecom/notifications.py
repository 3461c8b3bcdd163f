"""Task failure alerts to people (``WeComNotifier``, an app message) or a group (``WeComWebhookNotifier``, a
robot), each sent once per failure through the delivery ledger."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseNotifier

from wecom import warehouse
from wecom.delivery import AppMessages, Claimant, Outgoing, RobotMessages, Sender, Transport
from wecom.hooks import WeComHook
from wecom.messages import ROBOT_MARKDOWN_LIMIT, Recipients, markdown
from wecom.webhook import WeComWebhookHook


def _first_line(error: Any) -> str:
    text = str(error or "").strip().splitlines()
    return text[0][:300] if text else "(no error message)"


def alert_markdown(context: dict[str, Any]) -> str:
    """Deterministic for one failure (no clock in it): a second firing is byte-identical."""
    ti = context["ti"]
    heading = "任务重试中 Task retrying" if _retrying(ti) else "任务失败 Task failed"
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


def _retrying(ti: Any) -> bool:
    return str(getattr(ti, "state", "")).endswith("up_for_retry")


class BaseWeComNotifier(BaseNotifier):
    """Alerts on final failure only unless ``alert_on_retry``; the ledger key names the task attempt, so a
    callback that fires twice alerts once.

    :param warehouse_conn_id: the PostgreSQL connection holding the delivery ledger.
    :param alert_on_retry: also alert when the task will be retried.
    """

    template_fields: Sequence[str] = ("warehouse_conn_id",)

    def __init__(
        self, *, warehouse_conn_id: str = warehouse.WAREHOUSE_CONN_ID, alert_on_retry: bool = False
    ) -> None:
        super().__init__()
        self.warehouse_conn_id = warehouse_conn_id
        self.alert_on_retry = alert_on_retry

    def messages(self, key: str, content: str) -> list[Outgoing]:
        raise NotImplementedError

    def transport(self) -> Transport:
        raise NotImplementedError

    def notify(self, context: dict[str, Any]) -> None:
        ti = context["ti"]
        if _retrying(ti) and not self.alert_on_retry:
            self.log.info("Task will retry; no alert (alert_on_retry is off)")
            return
        key = f"alert:{ti.dag_id}:{ti.task_id}:{ti.run_id}:{getattr(ti, 'map_index', -1)}:{ti.try_number}"
        messages = self.messages(key, alert_markdown(context))
        with warehouse.connect_current(self.warehouse_conn_id) as conn:
            summary = Sender(self.transport(), conn, Claimant.from_context(context)).send(messages)
        self.log.info("WeCom alert: %s", "sent" if summary.sent else "already sent for this failure")


class WeComNotifier(BaseWeComNotifier):
    """A failure alert as an application message to users and/or departments.

    :param users: WeCom userids (a list, or ``"a|b"``); templated.
    :param departments: department ids; templated.
    :param wecom_conn_id: the ``wecom`` connection of the app that sends.
    """

    template_fields: Sequence[str] = ("users", "departments", "wecom_conn_id", "warehouse_conn_id")

    def __init__(
        self,
        *,
        users: Sequence[str] | str = (),
        departments: Sequence[str | int] | str = (),
        wecom_conn_id: str = WeComHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.users = users
        self.departments = departments
        self.wecom_conn_id = wecom_conn_id

    def messages(self, key: str, content: str) -> list[Outgoing]:
        chunks = Recipients.of(self.users, self.departments).chunks()
        return [Outgoing(key, f"chunk:{i}", markdown(content), to=to) for i, to in enumerate(chunks, 1)]

    def transport(self) -> Transport:
        return AppMessages(WeComHook(self.wecom_conn_id))


class WeComWebhookNotifier(BaseWeComNotifier):
    """A failure alert to a group chat through its robot (markdown up to 4,096 bytes).

    :param wecom_webhook_conn_id: the ``wecom_webhook`` connection holding the robot key; templated.
    """

    template_fields: Sequence[str] = ("wecom_webhook_conn_id", "warehouse_conn_id")

    def __init__(self, *, wecom_webhook_conn_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wecom_webhook_conn_id = wecom_webhook_conn_id

    def messages(self, key: str, content: str) -> list[Outgoing]:
        robot = f"robot:{self.wecom_webhook_conn_id}"
        return [Outgoing(key, robot, markdown(content, ROBOT_MARKDOWN_LIMIT), to={})]

    def transport(self) -> Transport:
        return RobotMessages(WeComWebhookHook(self.wecom_webhook_conn_id))


def alert_callbacks() -> list[BaseWeComNotifier]:
    """Failure alerts configured by the deployment: ``WECOM_ALERT_USERS`` ("a|b") for app messages
    and/or ``WECOM_ALERT_WEBHOOK_CONN_ID`` for a group robot. None when neither is set."""
    callbacks: list[BaseWeComNotifier] = []
    if os.environ.get("WECOM_ALERT_USERS"):
        callbacks.append(WeComNotifier(users=os.environ["WECOM_ALERT_USERS"]))
    if os.environ.get("WECOM_ALERT_WEBHOOK_CONN_ID"):
        callbacks.append(
            WeComWebhookNotifier(wecom_webhook_conn_id=os.environ["WECOM_ALERT_WEBHOOK_CONN_ID"])
        )
    return callbacks

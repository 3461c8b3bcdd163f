"""Alerts to people (``WeComNotifier``, an app message) or a group (``WeComWebhookNotifier``, a robot), each
sent once through the delivery ledger: task failures (``on_failure_callback``, in the worker) and missed
deadlines (``DeadlineAlert`` callbacks, awaited in the triggerer). Questions of human-in-the-loop tasks, as
answerable cards (``WeComHITLNotifier``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from airflow.sdk import AsyncCallback, BaseNotifier, DeadlineAlert, DeadlineReference
from croniter import croniter

from wecom import warehouse
from wecom.airflow_api import AIRFLOW_API_CONN_ID
from wecom.delivery import AppMessages, RobotMessages, Sender, Transport
from wecom.errors import WeComError
from wecom.hooks import WeComHook
from wecom.local import TIMEZONE
from wecom.outbox import Claimant, Outgoing
from wecom.payloads import ROBOT_MARKDOWN_LIMIT, Recipients, markdown
from wecom.questions import ask
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


def deadline_markdown(context: dict[str, Any]) -> str:
    """A missed deadline, from the simple context the scheduler gives a deadline callback."""
    run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    return "\n".join(
        [
            '## <font color="warning">未按时完成 Deadline missed</font>',
            f"> DAG: **{run.get('dag_id')}**",
            f"> Run: {run.get('dag_run_id')} (state: {run.get('state')})",
            f"> Deadline: {deadline.get('deadline_time')}",
            "The run had not succeeded by then: look at its task logs and wecom.message_failures.",
        ]
    )


class BaseWeComNotifier(BaseNotifier):
    """Alerts on final failure only unless ``alert_on_retry``; the ledger key names the task attempt (or the
    missed deadline), so a callback that fires twice alerts once.

    :param warehouse_conn_id: the PostgreSQL connection holding the delivery ledger.
    :param alert_on_retry: also alert when the task will be retried.
    :param context: given by the triggerer when awaited as a deadline callback.
    """

    template_fields: Sequence[str] = ("warehouse_conn_id",)

    def __init__(
        self,
        *,
        warehouse_conn_id: str = warehouse.WAREHOUSE_CONN_ID,
        alert_on_retry: bool = False,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(context)
        self.warehouse_conn_id = warehouse_conn_id
        self.alert_on_retry = alert_on_retry

    def messages(self, key: str, content: str) -> list[Outgoing]:
        raise NotImplementedError

    def transport(self) -> Transport:
        raise NotImplementedError

    def notify(self, context: dict[str, Any]) -> None:
        if "ti" not in context:
            return self._deadline_missed(context)
        ti = context["ti"]
        if _retrying(ti) and not self.alert_on_retry:
            self.log.info("Task will retry; no alert (alert_on_retry is off)")
            return None
        key = f"alert:{ti.dag_id}:{ti.task_id}:{ti.run_id}:{getattr(ti, 'map_index', -1)}:{ti.try_number}"
        self._send(key, alert_markdown(context), Claimant.from_context(context))
        return None

    async def async_notify(self, context: dict[str, Any]) -> None:
        """In the triggerer (deadline alerts): the ledger and the hooks are synchronous, so in a thread."""
        await asyncio.to_thread(self.notify, context)

    def _deadline_missed(self, context: dict[str, Any]) -> None:
        run = context.get("dag_run") or {}
        dag_id, run_id = run.get("dag_id"), run.get("dag_run_id")
        key = f"deadline:{dag_id}:{run_id}:{(context.get('deadline') or {}).get('id')}"
        self._send(key, deadline_markdown(context), Claimant(dag_id, run_id, "deadline-alert"))

    def _send(self, key: str, content: str, claimant: Claimant) -> None:
        messages = self.messages(key, content)
        with warehouse.connect_current(self.warehouse_conn_id) as conn:
            summary = Sender(self.transport(), conn, claimant).send(messages)
        self.log.info("WeCom alert %s: %s", key, "sent" if summary.sent else "already sent")


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


class WeComHITLNotifier(BaseNotifier):
    """Asks a human-in-the-loop task's question in WeCom (``notifiers=[WeComHITLNotifier(...)]`` on
    ``HITLOperator``, ``ApprovalOperator``, ``HITLBranchOperator``, ``HITLEntryOperator``).

    Each person asked gets a card with the subject, the body and the options as buttons (at most 6, one to
    choose, no params to fill in but ``answered_in_wecom_by``), else a link to the task's Required Actions
    page; a tap is answered in Airflow by the ``wecom_questions`` DAG. Once per question and person, through
    the ledger: a retry of the task sends nothing twice.

    :param userids: WeCom userids to ask (a list, or ``"a|b"``); templated. The task's ``assigned_users``
        whose id is a WeCom userid or a member's email are asked too.
    :param language: ``zh`` or ``en``: the cards' own words.
    :param airflow_api_conn_id: the bridge's Airflow API connection (its account answers for the tapper).
    """

    template_fields: Sequence[str] = ("userids", "wecom_conn_id", "warehouse_conn_id", "airflow_api_conn_id")

    def __init__(
        self,
        *,
        userids: Sequence[str] | str = (),
        language: str = "zh",
        wecom_conn_id: str = WeComHook.default_conn_name,
        warehouse_conn_id: str = warehouse.WAREHOUSE_CONN_ID,
        airflow_api_conn_id: str = AIRFLOW_API_CONN_ID,
    ) -> None:
        super().__init__()
        if language not in ("zh", "en"):
            raise ValueError(f"language must be 'zh' or 'en', not {language!r}")
        self.userids = userids
        self.language = language
        self.wecom_conn_id = wecom_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.airflow_api_conn_id = airflow_api_conn_id

    def notify(self, context: dict[str, Any]) -> None:
        userids = self.userids.split("|") if isinstance(self.userids, str) else list(self.userids)
        try:
            result = ask.ask(
                context,
                userids=[u.strip() for u in userids if u and u.strip()],
                language=self.language,
                wecom_conn_id=self.wecom_conn_id,
                warehouse_conn_id=self.warehouse_conn_id,
                airflow_api_conn_id=self.airflow_api_conn_id,
            )
        except WeComError as exc:  # the question stands: answerable in Airflow; the ledger says what is left
            self.log.error("Could not ask in WeCom (%s); answer in Airflow's Required Actions page", exc)
            return
        self.log.info("Asked in WeCom: %s", result)


def _alert_targets() -> list[tuple[type[BaseWeComNotifier], dict[str, str]]]:
    """The deployment's alert targets: ``WECOM_ALERT_USERS`` ("a|b", app messages) and/or
    ``WECOM_ALERT_WEBHOOK_CONN_ID`` (a group robot)."""
    targets: list[tuple[type[BaseWeComNotifier], dict[str, str]]] = []
    if os.environ.get("WECOM_ALERT_USERS"):
        targets.append((WeComNotifier, {"users": os.environ["WECOM_ALERT_USERS"]}))
    if os.environ.get("WECOM_ALERT_WEBHOOK_CONN_ID"):
        targets.append(
            (WeComWebhookNotifier, {"wecom_webhook_conn_id": os.environ["WECOM_ALERT_WEBHOOK_CONN_ID"]})
        )
    return targets


def alert_callbacks() -> list[BaseWeComNotifier]:
    """Failure alerts to the deployment's alert targets; none when none is configured."""
    return [notifier(**kwargs) for notifier, kwargs in _alert_targets()]


def deadline_alerts(cron: str, deadline: str, timezone: str = TIMEZONE) -> list[Any]:
    """One alert to each of the deployment's targets when a run has not succeeded by ``deadline`` (HH:MM
    local) on the day the ``cron`` schedule runs it; none when no target is configured.

    The deadline is measured from the run's logical date (the cron's time for scheduled runs), as the
    time from the cron's first run of a day to ``deadline`` that day.
    """
    interval = deadline_interval(cron, deadline, timezone)
    return [
        DeadlineAlert(
            reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
            interval=interval,
            callback=AsyncCallback(notifier, kwargs=kwargs),
            name=f"{notifier.__name__} at {deadline}",
        )
        for notifier, kwargs in _alert_targets()
    ]


def deadline_interval(cron: str, deadline: str, timezone: str = TIMEZONE) -> timedelta:
    """From a day's first ``cron`` time to ``deadline`` (HH:MM) that day; a fixed reference day, so the
    result never changes between parses."""
    tz = ZoneInfo(timezone)
    day = datetime(2026, 1, 5, tzinfo=tz)  # a Monday: weekday crons run on it
    first = croniter(cron, day - timedelta(seconds=1)).get_next(datetime)
    hours, minutes = (int(part) for part in deadline.split(":"))
    interval = day.replace(hour=hours, minute=minutes) - first
    if interval <= timedelta(0):
        raise ValueError(f"the deadline {deadline} is not after the first run of {cron!r} in a day")
    return interval

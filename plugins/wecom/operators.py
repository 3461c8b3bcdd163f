"""WeComSendMessageOperator: send one application message to users, departments and tags, once."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from wecom import warehouse
from wecom.delivery import AppMessages, Sender
from wecom.errors import NO_VALID_RECIPIENT
from wecom.hooks import WeComHook
from wecom.outbox import Claimant, Outgoing
from wecom.payloads import DuplicateCheck, Recipients, build, markdown, split_markdown


class WeComSendMessageOperator(BaseOperator):
    """Send a message through the delivery ledger and return what WeCom said (msgids, invalid recipients).

    Long markdown is split into numbered parts; recipients are chunked to WeCom's limits.

    :param msgtype: ``markdown`` (default), ``text``, ``textcard``, ``news`` or ``template_card``.
    :param content: the text or markdown; templated.
    :param card: the fields of a textcard, news or template_card; templated.
    :param users: WeCom userids (a list, or ``"a|b"``); templated.
    :param departments: department ids; templated.
    :param tags: tag ids; templated.
    :param dedup_key: the ledger key: the default names the DAG, task and run, so a retry or a cleared
        task sends nothing twice; templated.
    :param wecom_conn_id: the ``wecom`` connection of the app that sends; templated.
    :param warehouse_conn_id: the PostgreSQL connection holding the delivery ledger; templated.
    """

    template_fields: Sequence[str] = (
        "content",
        "card",
        "users",
        "departments",
        "tags",
        "dedup_key",
        "wecom_conn_id",
        "warehouse_conn_id",
    )
    template_fields_renderers = {"content": "md", "card": "json"}
    ui_color = "#2f8fff"

    def __init__(
        self,
        *,
        msgtype: str = "markdown",
        content: str | None = None,
        card: dict[str, Any] | None = None,
        users: Sequence[str] | str = (),
        departments: Sequence[str | int] | str = (),
        tags: Sequence[str] | str = (),
        dedup_key: str = "{{ dag.dag_id }}:{{ task.task_id }}:{{ run_id }}",
        wecom_conn_id: str = WeComHook.default_conn_name,
        warehouse_conn_id: str = warehouse.WAREHOUSE_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.msgtype = msgtype
        self.content = content
        self.card = card
        self.users = users
        self.departments = departments
        self.tags = tags
        self.dedup_key = dedup_key
        self.wecom_conn_id = wecom_conn_id
        self.warehouse_conn_id = warehouse_conn_id

    @cached_property
    def hook(self) -> WeComHook:
        return WeComHook(wecom_conn_id=self.wecom_conn_id)

    def payloads(self) -> list[dict[str, Any]]:
        if self.msgtype == "markdown":
            return [markdown(part) for part in split_markdown(self.content or "")]
        if self.msgtype == "text":
            return [build("text", content=self.content or "")]
        return [build(self.msgtype, **(self.card or {}))]

    def duplicate_check(self) -> DuplicateCheck:
        """Cover the task's whole retry horizon (capped at WeCom's 4 hours)."""
        delay = self.retry_delay.total_seconds() if self.retry_delay else 300
        horizon = (self.retries or 0) * delay * (2 if self.retry_exponential_backoff else 1) + 1800
        return DuplicateCheck(interval=int(max(1800, horizon)))

    def execute(self, context: Any) -> dict[str, Any]:
        payloads = self.payloads()  # validated before any call
        recipients = Recipients.of(self.users, self.departments, self.tags)
        chunks = recipients.chunks()
        messages = [
            Outgoing(
                f"{self.dedup_key}#part{p}" if len(payloads) > 1 else self.dedup_key,
                f"chunk:{c}",
                payload,
                to,
            )
            for p, payload in enumerate(payloads, 1)
            for c, to in enumerate(chunks, 1)
        ]
        with warehouse.connect_current(self.warehouse_conn_id) as conn:
            transport = AppMessages(self.hook, self.duplicate_check())
            summary = Sender(transport, conn, Claimant.from_context(context)).send(messages)
        result = summary.to_dict()
        if summary.skipped and not summary.sent and not summary.already_done:
            raise AirflowFailException(
                f"every recipient is invalid ({NO_VALID_RECIPIENT}): users {recipients.users}, departments {recipients.parties}, "
                f"tags {recipients.tags}. Check the userids and the app's visible range."
            )
        if summary.failed:
            raise AirflowFailException(
                f"{summary.failed} message part(s) were refused by WeCom: see wecom.message_failures"
            )
        self.log.info(
            "Sent %s request(s), %s already sent before; invalid users: %s",
            summary.sent,
            summary.already_done,
            summary.invalid_users,
        )
        return result

"""The callback inbox as an event for Airflow's scheduler: a trigger, run by the triggerer, that fires when
events of its kinds wait in ``wecom.callback_events``, and at no other time.

The receiver stores each event and ``NOTIFY``s in the same statement, so PostgreSQL delivers the notice
exactly when the event is committed (never before, never for a rolled-back one). The trigger LISTENs, and
between notices it looks at the inbox itself every ``poll_interval`` seconds (one indexed query): a notice
lost with a dropped connection or a triggerer restart costs at most that long. It fires once for each new
newest event, and again every ``refire_after`` seconds while events stay waiting (a run that failed, or was
lost), so a quiet inbox makes no runs at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from psycopg import AsyncConnection

from wecom import sql, warehouse
from wecom.airflow_api import AIRFLOW_API_CONN_ID, AirflowApi, TaskRef, settled

log = logging.getLogger(__name__)

INBOX = "callbacks/inbox.sql"
QUESTIONS = "questions/questions.sql"
WARN_EVERY = 300.0  # seconds between two warnings about an unreachable warehouse


class InboxTrigger(BaseEventTrigger):
    """Fires when callback events of ``events`` kinds (``change_contact``, ``template_card_event``) wait."""

    def __init__(
        self,
        events: list[str],
        warehouse_conn_id: str = warehouse.WAREHOUSE_CONN_ID,
        poll_interval: float = 10.0,
        refire_after: float = 60.0,
    ) -> None:
        super().__init__()
        self.events = list(events)
        self.warehouse_conn_id = warehouse_conn_id
        self.poll_interval = poll_interval
        self.refire_after = refire_after

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {
            "events": self.events,
            "warehouse_conn_id": self.warehouse_conn_id,
            "poll_interval": self.poll_interval,
            "refire_after": self.refire_after,
        }
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        fired_up_to, fired_at, warned_at = 0, float("-inf"), float("-inf")
        conn = None
        while True:
            try:
                conn = conn or await self._listen()
                newest, oldest = await self._waiting(conn)
                now = time.monotonic()
                if newest is not None and (newest > fired_up_to or now - fired_at >= self.refire_after):
                    fired_up_to, fired_at = newest, now
                    yield TriggerEvent({"events": self.events, "newest_event_id": newest, "oldest": oldest})
                await self._notice(conn)
            except Exception as exc:  # noqa: BLE001 - a watcher outlives a warehouse restart
                if conn is not None:
                    await conn.close()
                conn = None
                if time.monotonic() - warned_at >= WARN_EVERY:
                    warned_at = time.monotonic()
                    what = (self.warehouse_conn_id, type(exc).__name__, self.poll_interval)
                    log.warning(
                        "Cannot watch the callback inbox through %r (%s); trying again every %s s", *what
                    )
                await asyncio.sleep(self.poll_interval)

    async def _listen(self) -> AsyncConnection:
        params = await asyncio.to_thread(self._conninfo)
        conn = await AsyncConnection.connect(**params, autocommit=True)
        await conn.execute(sql.statement(INBOX, "listen"))
        return conn

    def _conninfo(self) -> dict[str, str]:
        """The warehouse connection's parameters, as the project's own connect resolves them."""
        with warehouse.connect(self.warehouse_conn_id) as conn:
            return {o.keyword.decode(): o.val.decode() for o in conn.pgconn.info if o.val is not None}

    async def _waiting(self, conn: AsyncConnection) -> tuple[int | None, str | None]:
        cursor = await conn.execute(sql.statements(INBOX)["waiting_newest"], {"events": self.events})
        newest, oldest = await cursor.fetchone()
        return newest, oldest.isoformat() if oldest else None

    async def _notice(self, conn: AsyncConnection) -> None:
        """Until a notice of one of our kinds, or ``poll_interval`` seconds."""
        async for notice in conn.notifies(timeout=self.poll_interval):
            if notice.payload in self.events:
                return


class QuestionsTrigger(BaseEventTrigger):
    """Fires when a question asked in WeCom is settled in Airflow while our record says it is open: answered
    in the UI or the API, timed out, or its task ended. Looks every ``poll_interval`` seconds (one indexed
    query, then one API read per open question; nothing while none is open), and again every
    ``refire_after`` seconds while such a question stays open (a run that failed)."""

    def __init__(
        self,
        warehouse_conn_id: str = warehouse.WAREHOUSE_CONN_ID,
        airflow_api_conn_id: str = AIRFLOW_API_CONN_ID,
        poll_interval: float = 10.0,
        refire_after: float = 60.0,
    ) -> None:
        super().__init__()
        self.warehouse_conn_id = warehouse_conn_id
        self.airflow_api_conn_id = airflow_api_conn_id
        self.poll_interval = poll_interval
        self.refire_after = refire_after

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {
            "warehouse_conn_id": self.warehouse_conn_id,
            "airflow_api_conn_id": self.airflow_api_conn_id,
            "poll_interval": self.poll_interval,
            "refire_after": self.refire_after,
        }
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        fired: set[str] = set()
        fired_at, warned_at = float("-inf"), float("-inf")
        api = AirflowApi(self.airflow_api_conn_id)
        while True:
            try:
                found = await asyncio.to_thread(self._settled_elsewhere, api)
                now = time.monotonic()
                if found and (found - fired or now - fired_at >= self.refire_after):
                    fired, fired_at = found, now
                    yield TriggerEvent({"questions": sorted(found)[:20]})
            except Exception as exc:  # noqa: BLE001 - a watcher outlives a warehouse or API restart
                if time.monotonic() - warned_at >= WARN_EVERY:
                    warned_at = time.monotonic()
                    log.warning("Cannot watch open questions (%s); trying again every %s s", type(exc).__name__,
                                self.poll_interval)  # fmt: skip
            await asyncio.sleep(self.poll_interval)

    def _settled_elsewhere(self, api: AirflowApi) -> set[str]:
        with warehouse.connect(self.warehouse_conn_id) as conn:
            rows = warehouse.dict_rows(conn, QUESTIONS, "open_questions", {"limit": 100})
        refs = [TaskRef(r["dag_id"], r["run_id"], r["task_id"], r["map_index"]) for r in rows]
        return {ref.question_id for ref in refs if settled(api.detail(ref))}

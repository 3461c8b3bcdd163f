"""The directory tables as Airflow assets, so a data team's own DAGs can run when the directory changed:

    from wecom.assets import DIRECTORY

    with DAG("headcount_report", schedule=DIRECTORY, ...):  # or schedule=[USERS] for members only
        ...

An event is emitted when a sync changed something, with its counts (``users_added`` and so on) in the
event's extra; an unchanged sync emits none.

``CALLBACK_INBOX`` is the receiver's inbox (``wecom.callback_events``). When the environment names a Redis
connection in ``WECOM_WAKEUP_CONN_ID``, it carries an ``AssetWatcher`` on the common-messaging
``MessageQueueTrigger`` (Redis pub/sub): the receiver publishes on ``WAKEUP_CHANNEL`` after storing events
and the events DAG, scheduled on this asset as well as every minute, starts at once.
"""

from __future__ import annotations

import os

from airflow.sdk import Asset, AssetWatcher

DEPARTMENTS = Asset(name="wecom.departments", uri="wecom://warehouse/wecom/departments", group="wecom")
USERS = Asset(name="wecom.users", uri="wecom://warehouse/wecom/users", group="wecom")
MEMBERSHIPS = Asset(
    name="wecom.user_departments", uri="wecom://warehouse/wecom/user_departments", group="wecom"
)
DIRECTORY = [DEPARTMENTS, USERS, MEMBERSHIPS]

WAKEUP_CHANNEL = "wecom.callback_events"
WAKEUP_CONN_ID_ENV = "WECOM_WAKEUP_CONN_ID"


def wakeup_conn_id() -> str | None:
    """The Redis connection the receiver publishes through and the watcher listens on; None: no wake-up."""
    return os.environ.get(WAKEUP_CONN_ID_ENV) or None


def _inbox_watchers() -> list[AssetWatcher]:
    conn_id = wakeup_conn_id()
    if not conn_id:
        return []
    # Imported only when wanted: importing it loads every provider's queue classes.
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    trigger = MessageQueueTrigger(
        scheme="redis+pubsub", channels=[WAKEUP_CHANNEL], redis_conn_id=conn_id, poll_interval=1
    )
    return [AssetWatcher(name="wecom_callback_wakeup", trigger=trigger)]


CALLBACK_INBOX = Asset(
    name="wecom.callback_events",
    uri="wecom://warehouse/wecom/callback_events",
    group="wecom",
    watchers=_inbox_watchers(),
)

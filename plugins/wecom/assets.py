"""The directory tables as Airflow assets, so a data team's own DAGs can run when the directory changed:

    from wecom.assets import DIRECTORY

    with DAG("headcount_report", schedule=DIRECTORY, ...):  # or schedule=[USERS] for members only
        ...

An event is emitted when a sync changed something, with its counts (``users_added`` and so on) in the
event's extra; an unchanged sync emits none.

``CONTACT_EVENTS`` and ``CARD_TAPS`` are what waits in the callback receiver's inbox
(``wecom.callback_events``): contact changes and card taps. Each carries an ``AssetWatcher`` whose trigger
(``wecom.triggers.InboxTrigger``, run by the triggerer) fires when events of its kind wait, at once on the
receiver's NOTIFY and within ``poll_interval`` otherwise; the DAG that handles them is scheduled on it and
runs then, and only then.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetWatcher

from wecom.triggers import InboxTrigger, QuestionsTrigger

DEPARTMENTS = Asset(name="wecom.departments", uri="wecom://warehouse/wecom/departments", group="wecom")
USERS = Asset(name="wecom.users", uri="wecom://warehouse/wecom/users", group="wecom")
MEMBERSHIPS = Asset(
    name="wecom.user_departments", uri="wecom://warehouse/wecom/user_departments", group="wecom"
)
DIRECTORY = [DEPARTMENTS, USERS, MEMBERSHIPS]


def _inbox(event: str) -> Asset:
    """The inbox's events of one kind, watched by the triggerer."""
    trigger = InboxTrigger(events=[event])
    return Asset(
        name=f"wecom.callback_events.{event}",
        uri=f"wecom://warehouse/wecom/callback_events/{event}",
        group="wecom",
        watchers=[AssetWatcher(name=f"wecom_inbox_{event}", trigger=trigger)],
    )


CONTACT_EVENTS = _inbox("change_contact")
CARD_TAPS = _inbox("template_card_event")

QUESTIONS_SETTLED = Asset(
    name="wecom.questions.settled_elsewhere",
    uri="wecom://warehouse/wecom/questions/settled_elsewhere",
    group="wecom",
    watchers=[AssetWatcher(name="wecom_questions_settled", trigger=QuestionsTrigger())],
)
"""Questions asked in WeCom that were answered in Airflow, timed out or ended while their cards still show
buttons (``wecom.triggers.QuestionsTrigger``): the questions DAG runs on it and on ``CARD_TAPS``."""

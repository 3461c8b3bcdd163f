"""Ledger keys do not depend on the database session's time zone: the same reminder windows run with the
platform (and warehouse) session in UTC, Asia/Shanghai and America/Los_Angeles give the same keys and one
message of each kind; ledgers written the old way (the start with the session's offset in the key) are
rewritten by migration 015, after which nothing is sent again and old cards are still escalated and
answered. Real PostgreSQL, the simulator over HTTP, the real callback receiver (see test_reminder_answers)."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import psycopg
import pytest
from conftest import postgres_conn
from test_reminder_answers import DAY, REMIND_AT, World, world

from wecom import warehouse
from wecom.errors import WeComDataError
from wecom.interviews.keys import ledger_instant, reminder_key
from wecom.interviews.render import Interview
from wecom.payloads import task_id_for

ZONES = ("UTC", "Asia/Shanghai", "America/Los_Angeles")
AT_10 = f"{DAY.isoformat()}T02:00:00Z"  # interviews 1-3: 10:00 in Beijing
AT_12 = f"{DAY.isoformat()}T04:00:00Z"  # interview 4: 12:00 in Beijing
NEW_FORM = re.compile(
    r"^(dry-run:.*:)?(reminder|escalation|decline):\d+:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ:[^:]+$"
)
OLD_OFFSET = re.compile(r"(reminder|escalation|decline):\d+:[0-9T:.-]+[+-]\d\d:\d\d:")


def set_zone(monkeypatch: pytest.MonkeyPatch, db_url: str, zone: str) -> None:
    """The platform connection (``interview_source``) and the warehouse's, with the session in ``zone``."""
    conn = {**json.loads(postgres_conn(db_url)), "extra": {"options": f"-c TimeZone={zone}"}}
    monkeypatch.setenv("AIRFLOW_CONN_INTERVIEW_SOURCE", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_WAREHOUSE", json.dumps(conn))
    with warehouse.connect("interview_source") as source:
        assert source.execute("SHOW TimeZone").fetchone()[0] == zone
        [(starts_at,)] = source.execute(
            "SELECT starts_at FROM interview_contract.interviews WHERE interview_id = 1"
        ).fetchall()
        assert starts_at.utcoffset() == datetime(2026, 12, 1, tzinfo=ZoneInfo(zone)).utcoffset()


def old_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keys as written before: the start as the session returned it, with its offset."""
    monkeypatch.setattr("wecom.interviews.keys.ledger_instant", lambda moment: moment.isoformat())


def remigrate(db_url: str) -> None:
    """Apply migration 015 to a ledger written the old way (the world's setup applied it to an empty one)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DELETE FROM wecom.schema_migrations WHERE version = 15")
        assert warehouse.apply_migrations(conn) == ["015_utc_ledger_keys.sql"]


def tap(w: World, task_id: str, key: str) -> None:
    w.admin.click(w.interviewer, task_id, key)
    deadline = time.monotonic() + 10
    while not w.admin.callbacks()["idle"] and time.monotonic() < deadline:
        time.sleep(0.05)


def to_leader(w: World) -> dict[str, int]:
    received = w.received(w.leader)
    return {
        "escalation": sum("尚未确认" in m for m in received),
        "decline": sum("面试官无法参加" in m for m in received),
        "all": len(received),
    }


def ledger(w: World) -> set[tuple[str, str]]:
    return set(
        w.sql("SELECT dedup_key, recipient FROM wecom.message_log WHERE dedup_key NOT LIKE 'feedback%%'")
    )


def cards_under(w: World, offset: str) -> dict[int, str]:
    """interview -> task_id of the cards whose key names the start with this offset."""
    return dict(w.sql("SELECT interview_id, task_id FROM wecom.reminder_cards WHERE dedup_key LIKE %s",
                      f"%{offset}:%"))  # fmt: skip


@pytest.fixture
def w(monkeypatch, db_url) -> Iterator[World]:
    with world(monkeypatch, db_url) as built:
        yield built


def test_an_instant_has_one_key_form_whatever_its_zone():
    instant = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    forms = {ledger_instant(instant.astimezone(ZoneInfo(zone))) for zone in ZONES}
    assert forms == {"2026-12-01T02:00:00Z"}
    assert ledger_instant(datetime(2026, 12, 1, 10, 0, 0, 250_000, tzinfo=timezone(timedelta(hours=8)))) == (
        "2026-12-01T02:00:00Z"  # to the second, as migration 015 writes it
    )
    assert ledger_instant(datetime(999, 1, 1, tzinfo=UTC)) == "0999-01-01T00:00:00Z"
    with pytest.raises(WeComDataError, match="no time zone"):
        ledger_instant(datetime(2026, 12, 1, 10))
    interviews = [
        Interview(4711, "后端工程师", "王小明", instant.astimezone(ZoneInfo(z)), instant, None) for z in ZONES
    ]
    keys = {reminder_key(i, "zhangsan") for i in interviews}
    assert keys == {"reminder:4711:2026-12-01T02:00:00Z:zhangsan"}
    # The README's example card names this task_id.
    assert task_id_for(keys.pop()) == "reminder_4711_2026-12-01T02_00_00Z_zhangsan_d5008cda2066c218"


@pytest.mark.parametrize(
    "zones", [("UTC",), ("Asia/Shanghai",), ("America/Los_Angeles",), ZONES], ids=lambda z: "-".join(z)
)
def test_the_same_windows_in_any_session_zone_give_the_same_keys_and_one_message_each(
    monkeypatch, w, db_url, zones
):
    """Each step (and its re-run) with the sessions in the next zone: one zone throughout, or a change of
    zone between every two runs (a replica, a failover, PGTZ on one worker)."""
    zone = itertools.cycle(zones)

    def step(action, *args, **options):
        set_zone(monkeypatch, db_url, next(zone))
        return action(*args, **options)

    assert step(w.remind, REMIND_AT)["sent"] == 3  # the cards for 1, 2 and 3 (10:00)
    assert step(w.remind, REMIND_AT, run="again")["sent"] == 0
    tap(w, w.task_of(2), "decline")
    assert step(w.answers)["decline_messages_sent"] == 1
    escalated = step(w.remind, REMIND_AT + timedelta(minutes=10))
    assert (escalated["escalations"], escalated["sent"]) == (2, 2)  # 1 and 3; 2 was answered
    assert step(w.remind, REMIND_AT + timedelta(minutes=10), run="again")["sent"] == 0
    w.sql("UPDATE wecom.reminder_responses SET notified_at = NULL")  # told, then a crash before marking it
    assert step(w.answers, "a2")["decline_messages_sent"] == 0

    me, leader = w.interviewer, w.leader
    assert ledger(w) == {
        *((f"reminder:{i}:{AT_10}:{me}", me) for i in (1, 2, 3)),
        (f"escalation:1:{AT_10}:{me}", leader),
        (f"escalation:3:{AT_10}:{me}", leader),
        (f"decline:2:{AT_10}:{me}", leader),
    }
    cards = w.sql("SELECT task_id, dedup_key FROM wecom.reminder_cards")
    assert len(cards) == 3 and all(task_id == task_id_for(key) for task_id, key in cards)
    assert len(w.admin.cards()) == 3 and len(w.received(me)) == 3
    assert to_leader(w) == {"escalation": 2, "decline": 1, "all": 3}


def test_a_ledger_written_the_old_way_is_rewritten_and_nothing_is_sent_again(monkeypatch, w, db_url):
    with monkeypatch.context() as old:
        old_keys(old)
        set_zone(old, db_url, "Asia/Shanghai")
        assert w.remind(REMIND_AT)["sent"] == 3
        tap(w, w.task_of(2), "decline")
        assert w.answers()["decline_messages_sent"] == 1
        assert w.remind(REMIND_AT + timedelta(minutes=10))["sent"] == 2  # escalations of 1 and 3
        assert w.remind(REMIND_AT + timedelta(minutes=120))["sent"] == 1  # the card for 4 (12:00)
        w.remind(REMIND_AT + timedelta(minutes=120), run="dry", dry_run=True)
    written = w.sql("SELECT dedup_key FROM wecom.message_log ORDER BY message_id")
    assert all("+08:00:" in key for (key,) in written)  # what the old code wrote with the session in Beijing
    task_ids = dict(w.sql("SELECT interview_id, task_id FROM wecom.reminder_cards"))
    assert task_ids[4] == task_id_for(f"reminder:4:{DAY.isoformat()}T12:00:00+08:00:{w.interviewer}")
    w.sql("UPDATE wecom.reminder_responses SET notified_at = NULL")  # told, then a crash before marking it

    remigrate(db_url)
    me, leader = w.interviewer, w.leader
    keys = ledger(w)
    assert not [k for k, _ in keys if OLD_OFFSET.search(k)] and all(NEW_FORM.match(k) for k, _ in keys)
    dry_run = f"dry-run:dry-{(REMIND_AT + timedelta(minutes=120)).isoformat()}:reminder:4:{AT_12}:{me}"
    assert (dry_run, me) in keys  # the run id in it is left as it was
    # The cards keep the task_ids WeCom knows them by; their keys take the new form.
    assert dict(w.sql("SELECT interview_id, task_id FROM wecom.reminder_cards")) == task_ids
    assert {k for (k,) in w.sql("SELECT dedup_key FROM wecom.reminder_cards")} == {
        f"reminder:{i}:{at}:{me}" for i, at in ((1, AT_10), (2, AT_10), (3, AT_10), (4, AT_12))
    }

    for zone in ("America/Los_Angeles", "UTC"):  # the same windows again: nothing is sent again
        set_zone(monkeypatch, db_url, zone)
        for minutes in (0, 10, 120):
            assert w.remind(REMIND_AT + timedelta(minutes=minutes), run=f"after-{zone}")["sent"] == 0
        assert w.answers(f"after-{zone}")["decline_messages_sent"] == 0
    # The card for 4, sent under an old key, is still escalated (once), and still answerable by its task_id.
    escalated = w.remind(REMIND_AT + timedelta(minutes=130))
    assert (escalated["escalations"], escalated["sent"]) == (1, 1)
    assert w.remind(REMIND_AT + timedelta(minutes=130), run="again")["sent"] == 0
    tap(w, task_ids[4], "confirm")
    answered = w.answers("late")
    assert answered["clicks_recorded"] == 1 and answered["cards_updated"] == 1
    assert w.shown(4).startswith("已确认")
    assert (f"escalation:4:{AT_12}:{me}", leader) in ledger(w)
    assert len(w.admin.cards()) == 4 and len(w.received(me)) == 4
    assert to_leader(w) == {"escalation": 3, "decline": 1, "all": 4}


def test_a_reminder_recorded_under_two_offsets_keeps_one_and_is_escalated_once(monkeypatch, w, db_url):
    """Before the fix a change of zone between two runs sent every card again: the migration keeps the first
    under the new key (the duplicate keeps its old one) and an answer on either card counts."""
    with monkeypatch.context() as old:
        old_keys(old)
        set_zone(old, db_url, "Asia/Shanghai")
        assert w.remind(REMIND_AT)["sent"] == 3
        set_zone(old, db_url, "UTC")
        assert w.remind(REMIND_AT, run="utc")["sent"] == 3  # the bug: every card sent again
    first, again = cards_under(w, "+08:00"), cards_under(w, "+00:00")
    tap(w, again[1], "confirm")  # interview 1 answered on its second card
    assert w.answers()["clicks_recorded"] == 1

    remigrate(db_url)
    me = w.interviewer
    cards = dict(w.sql("SELECT dedup_key, task_id FROM wecom.reminder_cards"))
    assert {cards[f"reminder:{i}:{AT_10}:{me}"] for i in (1, 2, 3)} == set(first.values())
    rows = w.sql("SELECT dedup_key, status FROM wecom.message_log WHERE dedup_key LIKE 'reminder:%%'")
    kept = sorted(k for k, _ in rows if NEW_FORM.match(k))
    assert kept == [f"reminder:{i}:{AT_10}:{me}" for i in (1, 2, 3)]
    assert len([k for k, _ in rows if "+00:00:" in k]) == 3 and all(s == "sent" for _, s in rows)

    set_zone(monkeypatch, db_url, "America/Los_Angeles")
    assert w.remind(REMIND_AT, run="after")["sent"] == 0
    escalated = w.remind(REMIND_AT + timedelta(minutes=10))
    assert (escalated["escalations"], escalated["sent"]) == (2, 2)  # 2 and 3: 1 was answered
    set_zone(monkeypatch, db_url, "UTC")
    assert w.remind(REMIND_AT + timedelta(minutes=10), run="again")["sent"] == 0
    assert to_leader(w) == {"escalation": 2, "decline": 0, "all": 2}

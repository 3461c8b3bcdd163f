"""Interviews change, WeCom follows: a cancellation, a move, a panel change found against what was announced,
each told once to the people it concerns, the reminder cards it made wrong corrected in place, a tap on such
a card recorded as stale. The first tests decide without a database; the rest use the real PostgreSQL, the
simulator over HTTP and the callback receiver."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from test_reminder_answers import REMIND_AT, START, w  # noqa: F401 - the fixture

from wecom.errors import WorkPending
from wecom.interviews import changes, tasks
from wecom.interviews.changes import Version
from wecom.interviews.inputs import Person
from wecom.interviews.settings import ReminderSettings
from wecom.outbox import Claimant

T0 = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai


def version(**changed: object) -> Version:
    base = Version(
        1, "scheduled", T0, T0 + timedelta(hours=1), "https://x/1", "后端", "候选人", (1, 2), version=1
    )
    return replace(base, **changed)


WHO = {1: Person(1, "alice", "Alice"), 2: Person(2, "bob", "Bob"), 3: Person(3, "carol", "Carol"),
       4: Person(4, None, "Unmapped")}  # fmt: skip


def test_only_status_time_room_and_panel_make_a_change_and_a_reversal_makes_none():
    known = {1: version()}
    assert changes.detect(known, {1: replace(version(), version=0, candidate_name="改名")}) == []
    assert changes.detect(known, {1: version(version=0)}) == []  # moved and moved back before this run
    [moved] = changes.detect(known, {1: version(version=0, starts_at=T0 + timedelta(days=1))})
    assert (moved.version, moved.changes) == (2, ("moved",))
    [both] = changes.detect(known, {1: version(version=0, room_url="https://x/2", panel=(1, 3))})
    assert both.changes == ("room", "panel")
    [gone] = changes.detect(known, {})  # the platform no longer has it
    assert (gone.status, gone.changes) == ("cancelled", ("cancelled",))
    assert changes.detect({}, {2: version(interview_id=2, status="cancelled", version=0)}) == []
    [first] = changes.detect({}, {2: version(interview_id=2, version=0)})
    assert (first.version, first.changes) == (1, ("tracked",))
    cancelled = version(status="cancelled", version=2)
    assert changes.detect({1: cancelled}, {1: replace(cancelled, starts_at=T0 + timedelta(days=3))}) == []


def test_each_interviewer_hears_what_the_change_means_for_them_once():
    old = version(panel=(1, 2, 4))
    new = version(version=2, starts_at=T0 + timedelta(hours=4), ends_at=T0 + timedelta(hours=5),
                  panel=(2, 3), changes=("moved", "panel"))  # fmt: skip
    sent = {m.recipient: m for m in changes.notices(old, new, WHO, "zh", frozenset({"bob"}))}
    assert set(sent) == {"alice", "bob", "carol"}  # the unmapped one cannot be told
    assert {m.dedup_key for m in sent.values()} == {"change:1:v2"}
    text = {u: m.text() for u, m in sent.items()}
    assert "不在面试官名单" in text["alice"] and "14:00" not in text["alice"]
    assert "已改期" in text["bob"] and "14:00" in text["bob"] and "无需再次回复" in text["bob"]
    assert "加入面试官名单" in text["carol"]
    assert sent["alice"].expires_at == old.starts_at and sent["bob"].expires_at == new.starts_at

    cancelled = version(version=2, status="cancelled", changes=("cancelled",))
    told = changes.notices(old, cancelled, WHO, "en", frozenset())
    assert sorted(m.recipient for m in told) == ["alice", "bob"]
    assert all("Interview cancelled" in m.text() for m in told)


def test_a_card_shows_the_correction_only_where_it_is_wrong():
    moved = version(version=2, starts_at=T0 + timedelta(days=1, hours=4), changes=("moved",))
    assert changes.correction(moved, T0, True, "zh") == "已改期至 12-08 14:00"
    assert changes.correction(moved, moved.starts_at, True, "zh") is None  # a card for the new time is right
    assert changes.correction(moved, moved.starts_at, False, "en") == "You are off the panel"
    assert changes.correction(version(status="cancelled"), T0, True, "en") == "Cancelled"


def test_a_schedule_is_whole_and_within_wecoms_limits():
    long = version(candidate_name="名" * 400, room_url="https://x/" + "r" * 500)
    fields = changes.schedule_fields(long, ["alice"], "claim-1", 900)
    assert len(fields["summary"]) <= 128 and len(fields["location"]) <= 128
    assert len(fields["description"]) <= 512 and fields["description"].endswith("\nref claim-1")
    assert fields["start_time"] == int(T0.timestamp()) and fields["attendees"] == [{"userid": "alice"}]
    assert fields["reminders"]["remind_before_event_secs"] == 900
    assert fields["reminders"]["remind_time_diffs"] == [-900]


# -- with the warehouse, the simulator and the receiver ---------------------------------------------------

SINCE = REMIND_AT + timedelta(minutes=10)


def track(w, run: str = "c", since: datetime = SINCE, **options: object) -> dict:  # noqa: F811
    claimant = Claimant("interview_reminders", run, "track_interview_changes")
    return tasks.track_changes(since, claimant, ReminderSettings(**options))


def notices(w, userid: str) -> list[str]:  # noqa: F811
    return [m for m in w.received(userid) if "面试已" in m or "名单" in m]


def test_cancelled_and_moved_after_their_cards_corrected_told_once_and_stale_taps_count_for_nothing(w):  # noqa: F811
    assert w.remind(REMIND_AT)["reminder_cards"] == 3
    first = track(w)
    assert first["first_seen"] == 4 and first["changes_found"] == 0 and notices(w, w.interviewer) == []

    w.sql("UPDATE interview.interviews SET status = 'cancelled' WHERE id = 1")
    w.sql("UPDATE interview.interviews SET start_at = start_at + interval '1 day 4 hours',"
          " end_at = end_at + interval '1 day 4 hours' WHERE id = 2")  # fmt: skip
    w.sql("UPDATE interview.interviews SET start_at = start_at + interval '1 hour' WHERE id = 3")
    w.sql("UPDATE interview.interviews SET start_at = start_at - interval '1 hour' WHERE id = 3")  # undone
    # WeCom does not answer the card updates at first: the change is recorded and told, the cards wait.
    w.admin.fault("errcode", path="message/update_template_card", count=3, errcode=-1)
    with pytest.raises(WorkPending, match="2 card"):
        track(w, "c2")
    assert w.shown(1) is None and len(notices(w, w.interviewer)) == 2
    # Meanwhile the interviewer taps 确认参加 on the old card: stale, never an answer.
    w.click("confirm", 1)
    answered = w.answers()
    assert answered["clicks_stale"] == 1 and answered.get("clicks_recorded", 0) == 0
    assert w.sql("SELECT count(*) FROM wecom.reminder_responses") == [(0,)]
    assert answered["corrections_updated"] == 2 and w.shown(1) == "已取消"
    moved_to = (START + timedelta(days=1, hours=4)).strftime("%m-%d %H:%M")
    assert w.shown(2) == f"已改期至 {moved_to}" and w.shown(3) is None
    told = notices(w, w.interviewer)
    assert len(told) == 2 and any("面试已取消" in m for m in told) and any("面试已改期" in m for m in told)
    stale = w.sql("SELECT processed_by FROM wecom.callback_events WHERE event = 'template_card_event'")
    assert stale == [
        ("reminder answers: stale: the interview changed after this card; the card is corrected again",)
    ]

    again = track(w, "c3")  # a retry, a re-run, a backfill of the same window: nothing twice
    backfill = track(w, "backfill", since=SINCE - timedelta(minutes=30))
    assert again["changes_found"] == backfill["changes_found"] == 0
    assert again["change_notices_sent"] == backfill["change_notices_sent"] == 0
    assert len(notices(w, w.interviewer)) == 2
    rows = w.sql("SELECT interview_id, changes, interviewer, notice FROM wecom.interview_changes ORDER BY 1")
    assert rows == [(1, ["cancelled"], w.interviewer, "sent"), (2, ["moved"], w.interviewer, "sent")]


def test_what_is_read_for_digests_and_escalations_is_the_platform_now(w):  # noqa: F811
    """Cancelled after its card: no escalation of the unanswered card, not in the day's digest."""
    w.remind(REMIND_AT)
    track(w)
    w.sql("UPDATE interview.interviews SET status = 'cancelled' WHERE id IN (1, 2)")
    track(w, "c2")
    escalation_window = START - timedelta(minutes=17)  # holds START - 15 minutes
    result = w.remind(escalation_window, run="r2")
    assert result["escalations"] == 1  # interview 3 only
    digest = tasks.send_digest(START.date(), Claimant("interview_daily_digest", "d", "send_digest"))
    assert digest["interviews_read"] == 2  # interviews 3 and 4: the cancelled ones are gone


@pytest.mark.parametrize("kind", ["panel", "restored"])
def test_panel_changes_and_restorations_are_told_to_whom_they_concern(w, kind):  # noqa: F811
    track(w)
    w.sql("INSERT INTO interview.interview_interviewers (interview_id, user_id) VALUES (4, 2)")
    if kind == "restored":
        w.sql("UPDATE interview.interviews SET status = 'cancelled' WHERE id = 4")
        assert track(w, "c2")["changes_found"] == 1  # cancelled (with the panel it had)
        w.sql("UPDATE interview.interviews SET status = 'scheduled' WHERE id = 4")
    result = track(w, "c3")
    assert result["changes_found"] == 1
    told = w.received(w.recruiter)  # platform user 2
    expected = "面试已恢复" if kind == "restored" else "加入面试官名单"
    assert len(told) == 1 and expected in told[0]


# -- the WeCom calendar ---------------------------------------------------------------------------------


@pytest.fixture
def cal(w, monkeypatch):  # noqa: F811
    """The world with the calendar on: the recruiter's userid organises the app's interview calendar."""
    from conftest import use_connections
    from test_reminder_answers import AES_KEY, TOKEN

    use_connections(monkeypatch, w.sim.url, w.db_url, callback_token=TOKEN, callback_aes_key=AES_KEY,
                    token_store="memory", calendar_organizer=w.recruiter)  # fmt: skip
    w.sql("UPDATE interview.interviews SET start_at = date_trunc('minute', now()) + interval '2 days' + id * interval '1 hour',"
          " end_at = date_trunc('minute', now()) + interval '2 days' + (id + 1) * interval '1 hour'")  # fmt: skip
    return w


def sync(**options: object) -> dict:
    return tasks.sync_calendar(ReminderSettings(**options))


def live(w) -> dict[str, list[dict]]:  # noqa: F811
    """Live schedules by interview number (from the description)."""
    found: dict[str, list[dict]] = {}
    for s in w.admin.schedules():
        if s["status"] == 0:
            number = s["description"].split("面试编号 Interview no.: ")[1].split("\n")[0]
            found.setdefault(number, []).append(s)
    return found


def test_every_interview_is_one_schedule_that_follows_moves_panels_and_cancellations(cal):
    since = datetime.now(UTC)
    track(cal, since=since)
    assert sync() == {"calendar": "on", "calendar_added": 4}
    mine = cal.admin.calendar(cal.interviewer)
    assert len(mine) == 4 and all(s["reminders"]["remind_before_event_secs"] == 900 for s in mine)
    assert any(s["location"] == "https://www.showmebug.com/pads/1" for s in mine)

    cal.sql("UPDATE interview.interviews SET status = 'cancelled' WHERE id = 1")
    cal.sql("UPDATE interview.interviews SET start_at = start_at + interval '3 hours',"
            " end_at = end_at + interval '3 hours' WHERE id = 2")  # fmt: skip
    cal.sql("INSERT INTO interview.interview_interviewers (interview_id, user_id) VALUES (3, 2)")
    track(cal, "c2", since=since)
    assert sync() == {"calendar": "on", "calendar_deleted": 1, "calendar_updated": 2}
    mine = {s["schedule_id"]: s for s in cal.admin.calendar(cal.interviewer)}
    assert len(mine) == 3
    [moved] = live(cal)["2"]
    start = cal.sql("SELECT extract(epoch FROM start_at)::bigint FROM interview.interviews WHERE id = 2")[0][
        0
    ]
    assert moved["start_time"] == start and moved["sequence"] == 2
    assert [s["summary"] for s in cal.admin.calendar(cal.recruiter)] == [live(cal)["3"][0]["summary"]]

    calls = cal.admin.stats()["calls"]
    assert sync() == {"calendar": "on"}  # in step: no call at all
    assert cal.admin.stats()["calls"] == calls
    state = cal.sql("SELECT interview_id, state, sync_state FROM wecom.calendar_sync ORDER BY 1")
    assert state == [(1, "deleted", "in step"), (2, "synced", "in step"), (3, "synced", "in step"),
                     (4, "synced", "in step")]  # fmt: skip


def test_an_add_whose_answer_was_lost_is_found_not_added_twice(cal):
    track(cal, since=datetime.now(UTC))
    cal.admin.fault("lost_answer", path="oa/schedule/add", count=1)
    with pytest.raises(WorkPending):
        sync()
    assert cal.sql("SELECT count(*) FROM wecom.calendar_entries WHERE state = 'claimed'") == [(1,)]
    result = sync()  # the retry: the calendar's own list has the schedule carrying the claim
    assert (
        result["calendar_adopted"] == 1 and result["calendar_added"] == 3 and result["calendar_updated"] == 1
    )
    assert sorted(live(cal)) == ["1", "2", "3", "4"] and all(len(s) == 1 for s in live(cal).values())
    actions = cal.sql("SELECT action, count(*) FROM wecom.calendar_log GROUP BY 1 ORDER BY 1")
    assert actions == [("add", 3), ("adopt", 1), ("update", 1)]


def test_an_app_not_allowed_to_use_the_calendar_is_told_what_to_click_and_the_rest_runs(cal):
    from wecom.errors import SettingsError

    cal.admin.allow_schedules(False)
    result = track(cal, since=datetime.now(UTC))
    assert result["first_seen"] == 4  # changes are tracked and announced all the same
    with pytest.raises(SettingsError, match="日程 → 可调用接口的应用"):
        sync()
    why = cal.sql("SELECT DISTINCT sync_state FROM wecom.calendar_sync")
    assert len(why) == 1 and "可调用接口的应用" in why[0][0]
    cal.admin.allow_schedules(True)
    assert sync()["calendar_added"] == 4
    assert sync(calendar=False) == {"calendar": "off: the run's calendar param is false"}


def test_a_reminder_that_went_out_as_markdown_has_no_card_to_correct(monkeypatch, db_url):
    from test_reminder_answers import world

    with world(monkeypatch, db_url, callbacks=False) as plain:  # no callback URL: WeCom refuses cards (43012)
        plain.remind(REMIND_AT)
        track(plain)
        plain.sql("UPDATE interview.interviews SET status = 'cancelled' WHERE id = 1")
        result = track(plain, "c2")
        assert result["cards_superseded"] == 1 and result["change_notices_sent"] == 1
        assert (
            result.get("cards_updated", 0) == 0
            and plain.admin.stats()["calls"].get("message/update_template_card", 0) == 0
        )
        [(status, note)] = plain.sql("SELECT correction_status, correction_note FROM wecom.reminder_cards"
                                     " WHERE superseded_at IS NOT NULL")  # fmt: skip
        assert status == "not_corrected" and "markdown (43012)" in note


def test_an_add_that_never_reached_wecom_is_made_again_only_once_no_request_can_still_land(cal):
    track(cal, since=datetime.now(UTC))
    cal.admin.fault("errcode", path="oa/schedule/add", count=1, errcode=-1)  # refused before WeCom acted
    with pytest.raises(WorkPending):
        sync()
    [(waiting,)] = cal.sql("SELECT interview_id FROM wecom.calendar_entries WHERE state = 'claimed'")
    with pytest.raises(WorkPending):  # its claim is younger than a request can take: its add may still land
        sync()
    assert sorted(live(cal)) == sorted({"1", "2", "3", "4"} - {str(waiting)})  # the others are added
    cal.sql("UPDATE wecom.calendar_entries SET claimed_at = claimed_at - interval '1 minute'")
    assert sync() == {"calendar": "on", "calendar_added": 1}
    assert sorted(live(cal)) == ["1", "2", "3", "4"] and all(len(s) == 1 for s in live(cal).values())


def test_a_card_follows_every_later_version_and_one_sent_beside_a_change_is_caught(w):  # noqa: F811
    w.remind(REMIND_AT)
    track(w)
    w.sql("UPDATE interview.interviews SET start_at = start_at + interval '1 day', end_at = end_at + interval '1 day'"
          " WHERE id = 2")  # fmt: skip
    track(w, "c2")
    assert w.shown(2).startswith("已改期至")
    w.sql("UPDATE interview.interviews SET status = 'cancelled' WHERE id = 2")  # moved, then cancelled
    assert track(w, "c3")["cards_superseded"] == 1
    # The send's code went on the first correction and nobody tapped since: no code is left to show the
    # second one; the card says so, and the cancellation notice tells the interviewer instead.
    [(correction, status, note)] = w.sql("SELECT correction, correction_status, correction_note"
                                         " FROM wecom.reminder_cards WHERE interview_id = 2")  # fmt: skip
    assert (correction, status) == ("已取消", "not_corrected") and "no usable response code" in note
    assert any("面试已取消" in m and "候选人2" in m for m in notices(w, w.interviewer))

    # Interview 4's reminder goes out beside a run that already recorded its move: the card names the old
    # time (the reminder read the platform before the move), and no later run finds a change.
    w.sql("UPDATE interview.interviews SET start_at = start_at + interval '3 hours' WHERE id = 4")
    track(w, "c4")
    w.sql("UPDATE interview.interviews SET start_at = start_at - interval '3 hours' WHERE id = 4")
    w.remind(REMIND_AT + timedelta(hours=2), run="r2")  # the card for the old time
    w.sql("UPDATE interview.interviews SET start_at = start_at + interval '3 hours' WHERE id = 4")
    result = track(w, "c5")
    assert result["changes_found"] == 0 and result["cards_superseded"] == 1
    assert w.shown(4).startswith("已改期至")


def test_a_new_organizer_moves_the_interviews_without_doubling_them(cal, monkeypatch):
    from conftest import use_connections
    from test_reminder_answers import AES_KEY, TOKEN

    track(cal, since=datetime.now(UTC))
    assert sync()["calendar_added"] == 4
    use_connections(monkeypatch, cal.sim.url, cal.db_url, callback_token=TOKEN, callback_aes_key=AES_KEY,
                    token_store="memory", calendar_organizer=cal.leader)  # fmt: skip
    moved = sync()
    assert moved["calendar_added"] == 4, moved
    schedules = live(cal)
    assert sorted(schedules) == ["1", "2", "3", "4"] and all(len(s) == 1 for s in schedules.values())
    [current] = [c["cal_id"] for c in cal.admin.calendars() if c["organizer"].lower() == cal.leader]
    assert {s[0]["cal_id"] for s in schedules.values()} == {current}


def test_an_add_wecom_refuses_is_recorded_failed_and_made_next_run(cal):
    track(cal, since=datetime.now(UTC))
    cal.admin.fault("errcode", path="oa/schedule/add", count=1, errcode=40058)
    assert sync() == {"calendar": "on", "calendar_added": 3, "calendar_failed": 1}
    [(state, note)] = cal.sql("SELECT state, note FROM wecom.calendar_entries WHERE schedule_id IS NULL")
    assert state == "failed" and "40058" in note
    assert sync() == {"calendar": "on", "calendar_added": 1}

"""Reminders interviewers can answer: the card sent, the tap coming back through the real receiver, the
answer recorded once, the card updated, declines told to the right person, escalations once and in time,
and the markdown fallback. Real PostgreSQL, real HTTP to the simulator, the real callback receiver."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
import pytest
import requests
from conftest import ROOT, load_dag, sealed_delivery, serving, use_connections

from wecom.callbacks.crypto import CallbackCrypto
from wecom.directory import tasks as directory
from wecom.interviews import tasks
from wecom.interviews.render import LOCAL_TZ
from wecom.interviews.settings import ReminderSettings
from wecom.outbox import Claimant
from wecom_dev.days import weekday_ahead
from wecom_dev.platform import create_platform_schema
from wecom_simulator import SimulatorAdmin, SimulatorConfig, WeComSimulator, generate_org

TOKEN, AES_KEY = "answersCallbackToken", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
DAY = weekday_ahead(1)
START = datetime(DAY.year, DAY.month, DAY.day, 10, 0, tzinfo=LOCAL_TZ)


@dataclass
class World:
    sim: WeComSimulator
    admin: SimulatorAdmin
    db_url: str
    interviewer: str  # platform user 1, not a leader of their main department
    recruiter: str  # platform user 2
    leader: str  # the interviewer's department leader
    receiver: str | None

    def sql(self, query: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def remind(self, start: datetime, minutes: int = 10, run: str = "r", **options: object) -> dict:
        """The reminders run for the window [start, start + minutes)."""
        claimant = Claimant("interview_reminders", f"{run}-{start.isoformat()}", "send_due_reminders")
        options = {"feedback_after_hours": 10_000, **options}
        settings = ReminderSettings(**options)
        return tasks.send_reminders(start, start + timedelta(minutes=minutes), claimant, settings)

    def answers(self, run: str = "a") -> dict:
        return tasks.apply_answers(Claimant("interview_answers", run, "apply_answers"))

    def click(self, key: str, interview: int = 1, who: str | None = None) -> dict:
        clicked = self.admin.click(who or self.interviewer, self.task_of(interview), key)
        deadline = time.monotonic() + 10
        while not self.admin.callbacks()["idle"] and time.monotonic() < deadline:
            time.sleep(0.05)
        return clicked

    def task_of(self, interview: int) -> str:
        [(task_id,)] = self.sql("SELECT task_id FROM wecom.reminder_cards WHERE interview_id = %s", interview)
        return task_id

    def shown(self, interview: int) -> str | None:
        [card] = [c for c in self.admin.cards() if c["task_id"] == self.task_of(interview)]
        return card["shown"][self.interviewer]

    def received(self, userid: str) -> list[str]:
        return [json.dumps(m, ensure_ascii=False) for m in self.admin.messages(userid)]


@contextlib.contextmanager
def world(monkeypatch, db_url: str, *, time_scale: float = 1.0, callbacks: bool = True) -> Iterator[World]:
    from wecom.callbacks.receiver import application

    with WeComSimulator(
        generate_org(users=40, departments=5, seed=11), SimulatorConfig(time_scale=time_scale)
    ) as sim:
        use_connections(
            monkeypatch, sim.url, db_url, callback_token=TOKEN, callback_aes_key=AES_KEY, token_store="memory"
        )
        directory.migrate()
        directory.apply(directory.fetch()["snapshot_id"])
        org = sim.state.org
        leaders = {d: dept["department_leader"] for d, dept in org.departments.items()}
        people = sorted(org.users.values(), key=lambda u: u["userid"])
        interviewer = next(u for u in people if leaders[u["main_department"]]
                           and u["userid"] not in leaders[u["main_department"]])  # fmt: skip
        recruiter = next(u for u in people if u is not interviewer)
        with psycopg.connect(db_url, autocommit=True) as pg:
            create_platform_schema(pg)
            pg.execute(
                "INSERT INTO interview.users (id, name, email) VALUES (1, %s, %s), (2, %s, %s)",
                (interviewer["name"], interviewer["email"], recruiter["name"], recruiter["email"]),
            )
            for iid, recruiter_id, minutes in ((1, 2, 0), (2, None, 0), (3, None, 0), (4, None, 120)):
                pg.execute(
                    "INSERT INTO interview.interviews (id, position, candidate_name, start_at, end_at, status,"
                    " room_url, recruiter_id) VALUES (%s, '后端工程师', %s, %s, %s, 'scheduled', %s, %s)",
                    (iid, f"候选人{iid}", START + timedelta(minutes=minutes), START + timedelta(minutes=minutes + 60),
                     f"https://www.showmebug.com/pads/{iid}", recruiter_id),
                )  # fmt: skip
                pg.execute(
                    "INSERT INTO interview.interview_interviewers (interview_id, user_id) VALUES (%s, 1)",
                    (iid,),
                )
        admin = SimulatorAdmin(sim.url)
        leader = leaders[interviewer["main_department"]][0].lower()
        with serving(application()) if callbacks else contextlib.nullcontext() as url:
            if url:
                admin.send_callbacks(f"{url}/wecom/callback", TOKEN, AES_KEY)
            yield World(
                sim, admin, db_url, interviewer["userid"].lower(), recruiter["userid"].lower(), leader, url
            )


@pytest.fixture
def w(monkeypatch, db_url) -> Iterator[World]:
    with world(monkeypatch, db_url) as built:
        yield built


REMIND_AT = START - timedelta(minutes=33)  # the window [09:27, 09:37) holds 09:30 = START - 30 minutes


def test_cards_sent_tapped_recorded_updated_and_declines_told_once(w):
    result = w.remind(REMIND_AT)
    assert result["reminder_cards"] == 3 and result["sent"] == 3 and result.get("fallbacks", 0) == 0
    cards = w.admin.cards()
    assert len(cards) == 3 and all(c["shown"] == {w.interviewer: None} for c in cards)
    assert all(c["keys"] == ["confirm", "decline"] for c in cards)
    message = cards[0]["card"]
    assert [b["text"] for b in message["button_list"]] == ["确认参加", "无法参加"]
    assert message["card_action"]["url"].startswith("https://www.showmebug.com/pads/")
    assert w.sql("SELECT count(*) FROM wecom.message_log WHERE response_code IS NOT NULL") == [(3,)]

    w.click("confirm", 1)
    w.click("decline", 2)
    w.click("decline", 3)
    result = w.answers()
    assert result["clicks_recorded"] == 3 and result["cards_updated"] == 3
    assert w.shown(1).startswith("已确认 ") and w.shown(2) == w.shown(3) == "已告知无法参加"
    rows = w.sql("SELECT interview_id, choice, card_status FROM wecom.reminder_responses ORDER BY 1")
    assert rows == [(1, "confirmed", "updated"), (2, "declined", "updated"), (3, "declined", "updated")]
    # Declines of interviews without a recruiter go to the interviewer's department leader; none to the
    # recruiter (whose interview was confirmed).
    to_leader = w.received(w.leader)
    assert len(to_leader) == 2 and all("无法参加" in m for m in to_leader)
    assert any("候选人2" in m for m in to_leader) and any("候选人3" in m for m in to_leader)
    assert w.received(w.recruiter) == []
    assert result["decline_messages_sent"] == 2

    again = w.answers("a2")  # nothing new: nothing recorded, told or updated twice
    assert again == {"decline_messages_sent": 0}
    assert len(w.received(w.leader)) == 2
    notes = w.sql("SELECT notify_note FROM wecom.reminder_declines ORDER BY interview_id")
    assert all(w.leader in note for (note,) in notes)


def test_a_decline_goes_to_the_recruiter_and_the_first_answer_wins(w):
    w.remind(REMIND_AT)
    w.click("decline", 1)
    w.click("confirm", 1)  # a second tap before the first was processed (the buttons are still there)
    result = w.answers()
    assert result["clicks_recorded"] == 1 and result["clicks_duplicate"] == 1
    assert w.sql("SELECT choice FROM wecom.reminder_responses") == [("declined",)]
    assert w.shown(1) == "已告知无法参加"
    assert len(w.received(w.recruiter)) == 1 and w.received(w.leader) == []
    processed = w.sql("SELECT processed_by FROM wecom.callback_events WHERE event = 'template_card_event'"
                      " ORDER BY event_id")  # fmt: skip
    assert [p for (p,) in processed] == ["reminder answers: recorded",
                                         "reminder answers: duplicate: the first answer stands"]  # fmt: skip
    assert w.click("confirm", 1)["errcode"] == 42018  # the card shows the answer: nothing left to tap


def test_taps_that_answer_no_reminder_are_ignored_and_say_why(w):
    w.remind(REMIND_AT)
    crypto = CallbackCrypto.from_settings(TOKEN, AES_KEY, SimulatorConfig().corp_id)

    task_id = w.task_of(1)
    forged = [  # signed and sealed as WeCom would, but naming someone else's card or no card at all
        (w.recruiter, task_id, "confirm"),
        (w.interviewer, "reminder_not_ours", "confirm"),
        (w.interviewer, task_id, "'; DROP TABLE wecom.reminder_responses; --"),
    ]
    for n, (userid, task, key) in enumerate(forged):
        message = (f"<xml><ToUserName><![CDATA[{SimulatorConfig().corp_id}]]></ToUserName><FromUserName><![CDATA["
                   f"{userid}]]></FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]>"
                   f"</MsgType><Event><![CDATA[template_card_event]]></Event><EventKey><![CDATA[{key}]]></EventKey>"
                   f"<TaskId><![CDATA[{task}]]></TaskId><ResponseCode><![CDATA[code{n}]]></ResponseCode></xml>")  # fmt: skip
        query, body = sealed_delivery(crypto, message, nonce=f"n{n}")
        assert (
            requests.post(f"{w.receiver}/wecom/callback", params=query, data=body, timeout=5).status_code
            == 200
        )
    result = w.answers()
    assert result == {"clicks_ignored": 3, "decline_messages_sent": 0}
    assert w.sql("SELECT count(*) FROM wecom.reminder_responses") == [(0,)]
    why = sorted(p for (p,) in w.sql("SELECT processed_by FROM wecom.callback_events"))
    assert why == ["reminder answers: ignored: not a reminder card",
                   "reminder answers: ignored: not one of the card's buttons",
                   "reminder answers: ignored: tapped by someone the card was not sent to"]  # fmt: skip
    assert w.shown(1) is None


def test_an_update_whose_answer_is_lost_is_not_mistaken_for_an_expired_code(w):
    w.remind(REMIND_AT)
    w.click("confirm", 1)
    w.click("confirm", 2)
    # The first update reaches WeCom and spends the code, but its answer is cut off; then a 502.
    w.admin.fault("truncated", path="message/update_template_card", count=1)
    w.admin.fault("http502", path="message/update_template_card", count=1)
    result = w.answers()
    assert result["cards_updated"] == 2
    assert w.shown(1).startswith("已确认") and w.shown(2).startswith("已确认")
    notes = [
        n for (n,) in w.sql("SELECT card_note FROM wecom.reminder_responses WHERE card_note IS NOT NULL")
    ]
    assert notes == ["an earlier attempt spent the code; its answer was lost on the way"]


def test_a_card_whose_codes_expired_keeps_the_answer_and_says_why(monkeypatch, db_url):
    with world(monkeypatch, db_url, time_scale=72 * 3600) as w:  # 72 hours last one second
        w.remind(REMIND_AT)
        w.click("confirm", 1)
        time.sleep(1.2)
        result = w.answers()
        assert result["clicks_recorded"] == 1 and result["cards_not_updated"] == 1
        [(choice, status, note)] = w.sql(
            "SELECT choice, card_status, card_note FROM wecom.reminder_responses"
        )
        assert (choice, status) == ("confirmed", "not_updated") and "60140" in note and "72 hours" in note
        assert w.shown(1) is None
        assert w.sql("SELECT count(*) FROM wecom.card_codes WHERE spent_at IS NOT NULL") == [(2,)]


def test_transient_failures_leave_the_card_pending_and_fail_the_task(w):
    from wecom.errors import WorkPending

    w.remind(REMIND_AT)
    w.click("decline", 1)
    w.click("confirm", 2)
    w.admin.fault("http502", path="message/update_template_card", count=3)
    with pytest.raises(WorkPending, match="2 card"):
        w.answers()
    # Three tries of the first card's code, then the second card is left for the retry, untried.
    assert w.admin.calls("message/update_template_card") == 3
    assert w.sql("SELECT card_status FROM wecom.reminder_responses") == [("pending",), ("pending",)]
    assert len(w.received(w.recruiter)) == 1  # the decline was told before the cards were tried
    assert w.answers("retry")["cards_updated"] == 2
    assert w.shown(1) == "已告知无法参加" and w.shown(2).startswith("已确认")
    assert len(w.received(w.recruiter)) == 1


def test_escalation_once_in_time_never_after_an_answer_nor_after_the_start(w):
    windows = [REMIND_AT + timedelta(minutes=10 * n) for n in range(4)]  # 09:27 ... 10:07
    for start in windows:
        w.remind(start)
    w.click("confirm", 2)  # interview 2 answered before its escalation window is processed
    w.answers()
    sent = [w.remind(start, run="again")["escalations"] for start in windows]  # the same windows re-run
    assert w.sql("SELECT count(*) FROM wecom.reminder_cards WHERE interview_id < 4") == [(3,)]
    rows = w.sql("SELECT dedup_key, status FROM wecom.message_log WHERE dedup_key LIKE 'escalation:%%'"
                 " ORDER BY dedup_key")  # fmt: skip
    # 09:45 is in the window [09:37, 09:47) = windows[1]; it was processed before the answer came.
    assert [status for _, status in rows] == ["sent", "sent", "sent"]
    assert sent == [0, 2, 0, 0]  # the re-run builds the two still unanswered ...
    to_leader = [m for m in w.received(w.leader) if "尚未确认" in m]
    assert len(to_leader) == 3  # ... but sent once each


def test_escalations_skip_answered_cards_and_expire_in_backfills_of_the_past(w):
    w.remind(REMIND_AT)
    w.click("confirm", 1)
    w.answers()
    assert w.remind(REMIND_AT + timedelta(minutes=10))["escalations"] == 2  # 2 and 3; 1 was confirmed
    # A backfill after an outage: interview 4's card was delivered (send_stale), its escalation window
    # is processed only after it started.
    past = datetime.now(LOCAL_TZ) - timedelta(minutes=20)
    w.sql(
        "UPDATE interview.interviews SET start_at = %s, end_at = %s WHERE id = 4",
        past,
        past + timedelta(hours=1),
    )
    w.remind(past - timedelta(minutes=35), run="backfill", send_stale=True)
    result = w.remind(past - timedelta(minutes=20), run="backfill")
    assert result["escalations"] == 1 and result["expired"] == 1 and result["sent"] == 0
    [(status,)] = w.sql("SELECT status FROM wecom.message_log WHERE dedup_key LIKE 'escalation:4:%%'")
    assert status == "expired"


def test_markdown_fallback_without_a_callback_url_and_for_listed_interviewers(monkeypatch, db_url):
    with world(monkeypatch, db_url, callbacks=False) as w:
        result = w.remind(REMIND_AT)
        assert result["sent"] == 3 and result["fallbacks"] == 3
        assert all(m["msgtype"] == "markdown" for m in w.admin.messages(w.interviewer))
        assert w.admin.cards() == []
        rows = w.sql("SELECT status, errcode, reason FROM wecom.message_log ORDER BY dedup_key")
        assert all(r[:2] == ("sent", 43012) and r[2].startswith("sent as markdown: ") for r in rows)
        # WeCom was asked once: the rest of the run went straight to markdown.
        assert w.admin.calls("message/send") == 4
        assert w.remind(REMIND_AT + timedelta(minutes=10))["escalations"] == 0  # nothing answerable was sent


def test_reminder_style_markdown_and_markdown_only_users(w):
    w.sql(
        "INSERT INTO wecom.markdown_only_users (userid, reason) VALUES (%s, 'WeChat plugin only')",
        w.interviewer,
    )
    result = w.remind(REMIND_AT)
    assert result["reminder_cards"] == 0 and result["sent"] == 3
    assert w.admin.cards() == [] and w.sql("SELECT count(*) FROM wecom.reminder_cards") == [(0,)]
    w.sql("DELETE FROM wecom.markdown_only_users")
    result = w.remind(REMIND_AT + timedelta(minutes=120), style="markdown")
    assert result["reminder_cards"] == 0 and result["sent"] == 1  # interview 4, as today's markdown
    assert all(m["msgtype"] == "markdown" for m in w.admin.messages(w.interviewer))


def test_bad_settings_are_refused_with_what_to_do(w):
    from wecom.errors import WeComDataError

    with pytest.raises(WeComDataError, match="reminder_style must be one of"):
        w.remind(REMIND_AT, style="carrier-pigeon")
    with pytest.raises(WeComDataError, match="less than lead_minutes"):
        w.remind(REMIND_AT, escalate_minutes=30)


def test_the_answers_dag_runs_end_to_end(w, airflow_db):
    w.remind(REMIND_AT)
    w.click("decline", 2)
    dag = load_dag(ROOT / "dags", "interview_answers")
    assert dag.test().state == "success"
    assert w.shown(2) == "已告知无法参加" and len(w.received(w.leader)) == 1
    with psycopg.connect(w.db_url) as conn:
        conn.execute("SET ROLE wecom_analyst")
        readable = conn.execute(
            "SELECT interviewer, choice FROM wecom.reminder_status WHERE choice IS NOT NULL"
        )
        assert readable.fetchall() == [(w.interviewer, "declined")]
        assert conn.execute("SELECT confirmation_rate FROM wecom.reminder_confirmation_weekly").fetchall()


def test_the_readme_sql_runs_as_written(w):
    """Every SQL block the README gives a person: queries as ``wecom_analyst``, the rest as the owner,
    each rolled back; the recruiters' questions return the answers recorded above."""
    w.remind(REMIND_AT)
    w.click("decline", 2)
    w.answers()
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", readme, re.S)
    assert len(blocks) >= 4
    answers = {}
    with psycopg.connect(w.db_url) as conn:
        for block in blocks:
            for statement in filter(None, (s.strip() for s in re.split(r";\s*$", block, flags=re.M))):
                query = "\n".join(line for line in statement.splitlines() if not line.startswith("--"))
                title = next((line for line in statement.splitlines() if line.startswith("--")), query)
                with conn.transaction(force_rollback=True):
                    if query.lstrip().upper().startswith("SELECT"):
                        conn.execute("SET LOCAL ROLE wecom_analyst")
                    answers[title] = conn.execute(query).fetchall() if "SELECT" in query.upper() else None
    not_confirmed = answers["-- Who has not confirmed today's interviews?"]
    assert not_confirmed == []  # the interviews are on a day ahead
    [declined] = answers["-- Who cannot come, and was the recruiter told?"]
    assert declined[2] == "候选人2" and declined[3] == w.interviewer and w.leader in declined[5]

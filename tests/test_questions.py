"""Airflow's human-in-the-loop questions asked in WeCom: the card (pure), the notifier asking once, taps coming
back through the real receiver and answered by the bridge, every refusal never reaching Airflow, decisions
made in Airflow shown on the cards. WeCom is the simulator over HTTP; Airflow's REST API is a stand-in that
keeps Airflow's rules as measured on 3.3.2 (first answer 200, then 409; 403 for an unassigned caller; a JWT
from /auth/token); `make e2e` answers the real API under the real scheduler."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
import requests
from conftest import sealed_delivery, serving, use_connections
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from wecom.airflow_api import TaskRef
from wecom.callbacks.crypto import CallbackCrypto
from wecom.directory import tasks as directory
from wecom.errors import WorkPending
from wecom.payloads import MessageError
from wecom.questions import ask, cards
from wecom.questions.cards import ANSWER_PARAM, Question
from wecom.questions.tasks import settle_questions
from wecom_simulator import SimulatorAdmin, SimulatorConfig, WeComSimulator, generate_org

TOKEN, AES_KEY = "questionsCallbackToken", "qUeStIoNsAeSkEy0123456789abcdefghijklmnopqA"
BRIDGE, BRIDGE_PASSWORD = "wecom_bridge", "bridge-pw-7f3a9c"
NOW = datetime(2026, 12, 3, 9, 41, tzinfo=UTC)


def question(**changes: Any) -> Question:
    base = {
        "task": TaskRef("etl", "manual__1", "approve"),
        "subject": "Publish the report?",
        "body": "**12** rows changed",
        "options": ("Approve", "Reject"),
        "multiple": False,
        "params": (),
        "ui_link": "http://airflow.example/dags/etl/runs/manual__1/tasks/approve/required_actions?map_index=-1",
        "language": "en",
    }
    return Question(**{**base, **changes})


def test_a_card_carries_buttons_only_when_a_tap_can_answer_the_question():
    plain = cards.card(question(), "zhangsan")["template_card"]
    assert plain["card_type"] == "button_interaction" and plain["task_id"].startswith("hitl_")
    assert [(b["text"], b["key"]) for b in plain["button_list"]] == [
        ("Approve", "hitl:0"),
        ("Reject", "hitl:1"),
    ]
    assert plain["main_title"]["desc"] == "**12** rows changed" and plain["card_action"]["url"].startswith(
        "http"
    )
    assert question().card_task_id("zhangsan") != question().card_task_id("lisi")  # one card per person
    assert question(params=(ANSWER_PARAM,)).answerable  # the one param the bridge fills itself
    for link_only in (
        question(options=tuple(f"option {n}" for n in range(7))),  # more than 6 buttons
        question(multiple=True),  # several to choose
        question(params=("comment",)),  # something to fill in
        question(options=("A" * 41, "B")),  # longer than a button
        question(bridge_allowed=False),  # the bridge's account may not answer
    ):
        card = cards.card(link_only, "zhangsan")["template_card"]
        assert card["card_type"] == "text_notice" and card["jump_list"][0]["url"] == link_only.ui_link
    with pytest.raises(MessageError, match="base_url"):
        cards.card(question(multiple=True, ui_link=None), "zhangsan")


def test_hostile_text_is_cleaned_and_cut_to_the_cards_limits():
    long = question(subject="审批" * 100 + "\n\x1b[31m", body="x\u202e" + "长" * 400)
    card = cards.card(long, "zhangsan")["template_card"]
    assert len(card["main_title"]["title"].encode()) <= 128 and "\x1b" not in card["main_title"]["title"]
    assert len(card["main_title"]["desc"].encode()) <= 512 and card["main_title"]["desc"].endswith("…")
    assert "javascript" not in json.dumps(
        cards.card(question(ui_link="javascript:alert(1)", multiple=False), "u")
    )


def test_a_tap_means_an_option_only_by_a_button_of_the_card():
    options = ["Approve", "Reject"]
    assert cards.chosen_option(options, "hitl:1") == "Reject"
    assert [
        cards.chosen_option(options, k) for k in ("hitl:2", "hitl:-1", "hitl:x", "confirm", "", None)
    ] == [None] * 6
    assert cards.answer_params([], None, "zhangsan", NOW) == {}
    assert cards.answer_params([ANSWER_PARAM], ANSWER_PARAM, "zhangsan", NOW) == {
        ANSWER_PARAM: "zhangsan @ 2026-12-03T09:41:00+00:00"
    }


def test_the_decision_replaces_the_buttons_in_words():
    assert (
        cards.decision_text("wecom", ["Approve"], "zhangsan", NOW, "en") == "Approve · zhangsan · 12-03 17:41"
    )
    assert (
        cards.decision_text("airflow", ["Reject"], "Admin", NOW, "zh")
        == "已在 Airflow 中选择「Reject」· Admin · 12-03 17:41"
    )
    assert cards.decision_text("timeout", ["Reject"], None, NOW, "en").startswith(
        "Timed out: Reject (default)"
    )
    assert cards.decision_text("task_ended", None, None, NOW, "zh").startswith("已结束，未作答")


# -- a stand-in of Airflow's HITL API -----------------------------------------------------------------------


@dataclass
class HitlTask:
    options: list[str]
    assigned: list[str]
    params: list[str] = field(default_factory=list)
    state: str = "awaiting_input"
    created_at: float = 0.0
    answer: dict[str, Any] | None = None


class AirflowStandIn:
    """Airflow 3.3's hitlDetails routes and /auth/token, with its answers: 200 once, then 409; 403 for a
    caller the task does not assign; 404 for an unknown task; 503 while ``down``."""

    def __init__(self) -> None:
        self.tasks: dict[str, HitlTask] = {}
        self.patches: list[dict[str, Any]] = []
        self.tokens: set[str] = set()
        self.down = False
        self.lock = threading.Lock()
        self.on_answer: Any = None  # called once an answer is taken, before Airflow replies

    def app(self) -> Any:
        api = FastAPI()

        @api.post("/auth/token")
        async def token(request: Request) -> Any:
            body = await request.json()
            if self.down:
                return JSONResponse({"detail": "down"}, 503)
            if (body.get("username"), body.get("password")) != (BRIDGE, BRIDGE_PASSWORD):
                return JSONResponse({"detail": "Invalid credentials"}, 401)
            issued = f"jwt-{len(self.tokens)}-{time.time()}"
            self.tokens.add(issued)
            return JSONResponse({"access_token": issued}, 201)

        @api.api_route("/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/{map_index}/hitlDetails",
                       methods=["GET", "PATCH"])  # fmt: skip
        async def hitl(dag: str, run: str, task: str, map_index: int, request: Request) -> Any:
            if self.down:
                return JSONResponse({"detail": "down"}, 503)
            if request.headers.get("authorization", "").removeprefix("Bearer ") not in self.tokens:
                return JSONResponse({"detail": "Invalid JWT token"}, 403)
            key = f"{dag}/{run}/{task}/{map_index}"
            with self.lock:
                held = self.tasks.get(key)
                if held is None:
                    return JSONResponse({"detail": "not found"}, 404)
                if request.method == "PATCH":
                    body = await request.json()
                    self.patches.append({"task": key, **body})
                    if held.assigned and BRIDGE not in held.assigned:
                        return JSONResponse(
                            {"detail": f"User={BRIDGE} is not a respondent for the task."}, 403
                        )
                    if held.answer is not None:
                        return JSONResponse({"detail": "already been updated"}, 409)
                    self.decide(
                        key, body["chosen_options"], {"id": BRIDGE, "name": BRIDGE}, body["params_input"]
                    )
                    if self.on_answer:
                        self.on_answer()
                return JSONResponse(self.detail(held))

        return api

    def decide(self, key: str, chosen: list[str], by: dict | None, params: dict | None = None) -> None:
        held = self.tasks[key]
        held.answer = {"chosen_options": chosen, "responded_by_user": by, "params_input": params or {},
                       "responded_at": datetime.now(UTC).isoformat()}  # fmt: skip
        held.state = "success"

    @staticmethod
    def detail(held: HitlTask) -> dict[str, Any]:
        answer = held.answer or {}
        return {
            "options": held.options,
            "assigned_users": [{"id": a, "name": a} for a in held.assigned],
            "created_at": datetime.fromtimestamp(held.created_at, UTC).isoformat(),
            "response_received": held.answer is not None,
            "responded_by_user": answer.get("responded_by_user"),
            "responded_at": answer.get("responded_at"),
            "chosen_options": answer.get("chosen_options"),
            "params_input": answer.get("params_input", {}),
            "task_instance": {"state": held.state},
        }


@dataclass
class World:
    admin: SimulatorAdmin
    airflow: AirflowStandIn
    db_url: str
    receiver: str
    crypto: CallbackCrypto
    people: list[dict[str, Any]]

    def sql(self, query: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def ask(self, run: str, *, userids: list[str], assigned: list[str] = (), **task: Any) -> dict[str, Any]:
        """What the notifier does inside an asking task: the task waits in Airflow, then the cards go out."""
        from airflow.providers.standard.operators.hitl import ApprovalOperator

        approve = ApprovalOperator(
            task_id="approve", subject=f"Publish {run}?", body="12 rows changed",
            assigned_users=[{"id": a, "name": a} for a in assigned], **task,
        )  # fmt: skip
        ref = TaskRef("etl", run, "approve")
        self.airflow.tasks[ref.question_id] = HitlTask(
            ["Approve", "Reject"], [*assigned], list(approve.serialized_params), created_at=time.time() - 10
        )
        ti = SimpleNamespace(dag_id="etl", run_id=run, task_id="approve", map_index=-1)
        return ask.ask({"task": approve, "ti": ti, "task_instance": ti}, userids=userids, language="en", wecom_conn_id="wecom_default",
                       warehouse_conn_id="wecom_warehouse", airflow_api_conn_id="airflow_api")  # fmt: skip

    def card_of(self, run: str, userid: str) -> dict[str, Any]:
        task_id = Question(TaskRef("etl", run, "approve"), "", "", (), False, (), None, "en").card_task_id(
            userid
        )
        return next(c for c in self.admin.cards() if c["task_id"] == task_id)

    def tap(self, run: str, userid: str, key: str) -> None:
        self.admin.click(userid, self.card_of(run, userid)["task_id"], key)
        self.settle_callbacks()

    def settle_callbacks(self) -> None:
        deadline = time.monotonic() + 10
        while not self.admin.callbacks()["idle"] and time.monotonic() < deadline:
            time.sleep(0.05)

    def post(self, message: str, crypto: CallbackCrypto | None = None) -> int:
        """A callback posted to the receiver as WeCom would (or a forger with other keys)."""
        query, body = sealed_delivery(crypto or self.crypto, message, nonce=f"n{time.monotonic_ns()}")
        return requests.post(
            f"{self.receiver}/wecom/callback", params=query, data=body, timeout=10
        ).status_code

    def settle(self) -> dict[str, Any]:
        return settle_questions()

    def outcomes(self) -> list[tuple[str, str | None]]:
        return self.sql("SELECT outcome, userid FROM wecom.question_taps ORDER BY event_id")


def tap_xml(userid: str, task_id: str, key: str, corp: str) -> str:
    return (f"<xml><ToUserName><![CDATA[{corp}]]></ToUserName><FromUserName><![CDATA[{userid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            "<Event><![CDATA[template_card_event]]></Event>"
            f"<EventKey><![CDATA[{key}]]></EventKey><TaskId><![CDATA[{task_id}]]></TaskId>"
            f"<CardType><![CDATA[button_interaction]]></CardType><ResponseCode><![CDATA[rc{time.time_ns()}]]></ResponseCode>"
            "<AgentID>1000002</AgentID></xml>")  # fmt: skip


@contextlib.contextmanager
def world(monkeypatch: pytest.MonkeyPatch, db_url: str) -> Iterator[World]:
    from wecom.callbacks.receiver import application

    config = SimulatorConfig()
    with WeComSimulator(generate_org(users=12, departments=3, seed=5), config) as sim:
        use_connections(monkeypatch, sim.url, db_url, callback_token=TOKEN, callback_aes_key=AES_KEY,
                        token_store="memory")  # fmt: skip
        directory.migrate()
        directory.apply(directory.fetch()["snapshot_id"])
        airflow = AirflowStandIn()
        with serving(airflow.app()) as api_url, serving(application()) as receiver:
            monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(
                {"conn_type": "http", "host": api_url, "login": BRIDGE, "password": BRIDGE_PASSWORD}))  # fmt: skip
            monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example")
            admin = SimulatorAdmin(sim.url)
            admin.send_callbacks(f"{receiver}/wecom/callback", TOKEN, AES_KEY)
            people = sorted(sim.state.org.users.values(), key=lambda u: u["userid"])
            crypto = CallbackCrypto.from_settings(TOKEN, AES_KEY, config.corp_id)
            yield World(admin, airflow, db_url, receiver, crypto, people)


@pytest.fixture
def w(monkeypatch, db_url) -> Iterator[World]:
    with world(monkeypatch, db_url) as built:
        yield built


def test_asked_once_per_person_by_userid_and_by_assigned_email_and_answered_by_the_first_tap(w, caplog):
    alice, bob = (p["userid"].lower() for p in w.people[:2])
    asked = w.ask("r1", userids=[alice, "nobody-here"], assigned=[BRIDGE, w.people[1]["email"]])
    assert asked["asked"] == 2 and asked["sent"] == 2 and asked["answerable_in_wecom"]
    assert asked["unmapped"] == ["nobody-here"] and "nobody-here" in caplog.text
    again = w.ask("r1", userids=[alice], assigned=[BRIDGE, w.people[1]["email"]])  # the task's retry
    assert again["sent"] == 0 and again["already_sent"] == 2
    assert len([c for c in w.admin.cards() if c["task_id"].startswith("hitl_")]) == 2

    w.tap("r1", bob, "hitl:1")
    w.tap("r1", alice, "hitl:0")  # second: Airflow is never asked
    report = w.settle()
    assert report["taps_answered"] == 1 and report["taps_already_decided"] == 1
    [patch] = w.airflow.patches
    assert patch["chosen_options"] == ["Reject"] and patch["params_input"] == {}
    assert w.sql("SELECT decided_via, chosen, decided_by FROM wecom.questions") == [
        ("wecom", ["Reject"], bob)
    ]
    assert w.card_of("r1", alice)["shown"][alice].startswith("Reject · " + bob)
    assert w.card_of("r1", bob)["shown"][bob].startswith("Reject · " + bob)
    assert w.settle() == {"decided_elsewhere": 0}  # nothing left: a second run does nothing
    assert w.airflow.patches == [patch]


def test_who_tapped_goes_into_the_declared_param(w):
    from airflow.sdk import Param

    alice = w.people[0]["userid"].lower()
    w.ask("r2", userids=[alice], params={ANSWER_PARAM: Param(None, type=["null", "string"])})  # as the README
    w.tap("r2", alice, "hitl:0")
    w.settle()
    [patch] = w.airflow.patches
    assert patch["chosen_options"] == ["Approve"]
    assert patch["params_input"][ANSWER_PARAM].startswith(f"{alice} @ ")


def test_forged_replayed_foreign_and_unassigned_taps_never_reach_airflow(w):
    alice, bob, eve = (p["userid"].lower() for p in w.people[:3])
    w.ask("r3", userids=[alice])
    card = w.card_of("r3", alice)["task_id"]
    corp = SimulatorConfig().corp_id
    assert w.post(tap_xml(eve, card, "hitl:0", corp)) == 200  # someone the card was not sent to
    assert w.post(tap_xml(alice, card, "hitl:7", corp)) == 200  # no such button
    assert w.post(tap_xml(alice, "hitl_made_up_0000", "hitl:0", corp)) == 200  # no such card
    forger = CallbackCrypto.from_settings(TOKEN, "fOrGeDkEy0123456789abcdefghijklmnopqrstuvwA", corp)
    assert w.post(tap_xml(alice, card, "hitl:0", corp), forger) >= 400  # wrong key: the receiver refuses
    foreign = CallbackCrypto.from_settings(TOKEN, AES_KEY, "wwforeigncorp0000")
    assert w.post(tap_xml(alice, card, "hitl:0", "wwforeigncorp0000"), foreign) >= 400  # another corp
    w.settle()
    assert w.airflow.patches == []
    assert sorted(w.outcomes()) == sorted(
        [("not_allowed", eve), ("not_a_button", alice), ("unknown_card", alice)]
    )

    message = tap_xml(alice, card, "hitl:0", corp)
    assert w.post(message) == 200
    w.settle()
    query, body = sealed_delivery(w.crypto, message, nonce="replayed")
    requests.post(f"{w.receiver}/wecom/callback", params=query, data=body, timeout=10)  # a replay
    w.settle()
    assert len(w.airflow.patches) == 1  # answered once

    w.ask("r4", userids=[bob], assigned=["someone_else"])  # the bridge is not assigned: link-only cards
    [sent] = [m for m in w.admin.messages(bob) if m["msgtype"] == "template_card"]
    assert all(bob not in c["shown"] for c in w.admin.cards())  # no button card: a link to Airflow
    [(link_card,)] = w.sql("SELECT task_id FROM wecom.question_cards WHERE question_id = 'etl/r4/approve/-1'")
    assert w.post(tap_xml(bob, link_card, "hitl:0", corp)) == 200  # a forged tap on it
    w.settle()
    assert len(w.airflow.patches) == 1 and ("not_a_button", bob) in w.outcomes()


def test_decisions_made_in_airflow_a_timeout_or_an_ended_task_reach_the_cards(w):
    people = [p["userid"].lower() for p in w.people[:3]]
    for n, userid in enumerate(people):
        w.ask(f"ui{n}", userids=[userid])
    w.airflow.decide("etl/ui0/approve/-1", ["Approve"], {"id": "admin", "name": "Admin"})  # in the UI
    w.airflow.decide("etl/ui1/approve/-1", ["Reject"], None)  # the timeout's defaults
    w.airflow.tasks["etl/ui2/approve/-1"].state = "failed"  # timed out without defaults
    report = w.settle()
    assert report["decided_elsewhere"] == 3 and report["cards_updated"] == 3
    shown = [w.card_of(f"ui{n}", u)["shown"][u] for n, u in enumerate(people)]
    assert shown[0].startswith("Approve in Airflow · Admin") and shown[1].startswith("Timed out: Reject")
    assert shown[2].startswith("Ended unanswered")
    assert w.airflow.patches == []


def test_with_airflows_api_down_a_tap_waits_and_is_answered_once_it_is_back(w):
    alice = w.people[0]["userid"].lower()
    w.ask("r5", userids=[alice])
    w.airflow.down = True
    w.tap("r5", alice, "hitl:0")
    with pytest.raises(WorkPending):
        w.settle()
    assert w.sql("SELECT count(*) FROM wecom.callback_events WHERE processed_at IS NULL") == [(1,)]
    w.airflow.down = False
    assert w.settle()["taps_answered"] == 1
    assert len(w.airflow.patches) == 1 and w.card_of("r5", alice)["shown"][alice].startswith("Approve")


def test_a_bridge_killed_after_airflow_took_the_answer_records_the_tapper_when_it_runs_again(w):
    """SIGKILL between Airflow taking the answer and our record of it: the next run finds Airflow's answer,
    credits the person who tapped (not a later tap, not "unknown") and does not answer again."""
    import os
    import signal
    import subprocess
    import sys

    alice, bob = (p["userid"].lower() for p in w.people[:2])
    w.ask("r8", userids=[alice, bob])
    w.tap("r8", alice, "hitl:1")
    w.tap("r8", bob, "hitl:1")  # the same choice, later: it must not be credited
    run = "from wecom.questions.tasks import settle_questions; settle_questions()"
    bridge = subprocess.Popen([sys.executable, "-c", run], env=os.environ.copy())
    w.airflow.on_answer = lambda: os.kill(bridge.pid, signal.SIGKILL)
    assert bridge.wait(60) == -signal.SIGKILL
    w.airflow.on_answer = None
    assert w.airflow.tasks["etl/r8/approve/-1"].answer["chosen_options"] == ["Reject"]
    assert w.sql("SELECT decided_at FROM wecom.questions") == [(None,)]  # killed before it recorded

    report = w.settle()
    assert report["taps_answered"] == 1 and report["taps_already_decided"] == 1
    assert len(w.airflow.patches) == 1  # Airflow was not asked again
    assert w.sql("SELECT decided_via, chosen, decided_by FROM wecom.questions") == [
        ("wecom", ["Reject"], alice)
    ]
    assert sorted(w.outcomes()) == [("already_decided", bob), ("answered", alice)]
    for userid in (alice, bob):
        assert w.card_of("r8", userid)["shown"][userid].startswith(f"Reject · {alice}")


def test_secrets_of_the_bridge_stay_out_of_tables_and_logs(w, caplog):
    alice = w.people[0]["userid"].lower()
    w.ask("r6", userids=[alice])
    w.tap("r6", alice, "hitl:0")
    w.settle()
    dump = json.dumps(w.sql("SELECT * FROM wecom.questions") + w.sql("SELECT * FROM wecom.question_taps")
                      + w.sql("SELECT * FROM wecom.question_cards"), default=str)  # fmt: skip
    for secret in [BRIDGE_PASSWORD, *w.airflow.tokens]:
        assert secret not in dump and secret not in caplog.text


def test_the_readmes_example_dag_imports_and_asks_in_wecom(tmp_path):
    """The README's example, copied as a person would: it parses, and its approval asks through the notifier."""
    import re

    from airflow.dag_processing.dagbag import DagBag
    from conftest import ROOT, assert_form_takes_the_defaults

    from wecom.notifications import WeComHITLNotifier

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Ask a person in WeCom", 1)[1]
    (example,) = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], re.S)
    (tmp_path / "publish_report.py").write_text(example)
    bag = DagBag(dag_folder=tmp_path)
    assert bag.import_errors == {}
    approve = bag.dags["publish_report"].get_task("approve")
    (notifier,) = approve.notifiers
    assert isinstance(notifier, WeComHITLNotifier) and notifier.userids == "lisi|wangwu"
    assert "wecom_bridge" in [u["id"] for u in approve.assigned_users]
    assert list(approve.serialized_params) == [ANSWER_PARAM]  # so a tap answers it
    assert_form_takes_the_defaults(approve.params, "publish_report.approve")  # and so can the UI


def test_chaos_every_card_of_a_decided_question_shows_the_decision(w):
    """Taps duplicated, dropped and reordered by WeCom, two people racing, taps racing an answer in the UI,
    timeouts, Airflow's API down for a while and card updates failing: once the faults are over, each
    question holds Airflow's one decision, the warehouse says the same, and every card shows it."""
    import random

    rng = random.Random(22)
    w.admin.send_callbacks(
        f"{w.receiver}/wecom/callback", TOKEN, AES_KEY, duplicate=0.3, drop=0.15, reorder=True
    )
    people = [p["userid"].lower() for p in w.people]
    runs: dict[str, tuple[str, list[str]]] = {}
    for n in range(24):
        run, pair = f"c{n}", rng.sample(people, 2)
        w.ask(run, userids=pair)
        runs[run] = (rng.choice(["tap", "race", "ui_race", "timeout", "tap_while_down"]), pair)
    w.admin.fault("http502", "message/update_template_card", count=6)
    for run, (kind, pair) in runs.items():
        if kind in ("tap", "race", "ui_race", "tap_while_down"):
            w.admin.click(pair[0], w.card_of(run, pair[0])["task_id"], rng.choice(["hitl:0", "hitl:1"]))
        if kind == "race":
            w.admin.click(pair[1], w.card_of(run, pair[1])["task_id"], rng.choice(["hitl:0", "hitl:1"]))
        if kind == "ui_race":  # answered in the UI before the bridge runs
            w.airflow.decide(f"etl/{run}/approve/-1", ["Reject"], {"id": "admin", "name": "Admin"})
        if kind == "timeout":
            w.airflow.decide(f"etl/{run}/approve/-1", ["Approve"], None)
    w.settle_callbacks()

    w.airflow.down = True  # for the first runs
    for attempt in range(40):
        w.airflow.down = attempt < 3
        try:
            w.settle()
            break
        except WorkPending:
            time.sleep(0.1)
    else:
        pytest.fail("the bridge never settled")
    # Taps WeCom dropped never came: the person answers in the UI (or taps again); nothing else is waiting.
    for run in runs:
        if w.airflow.tasks[f"etl/{run}/approve/-1"].answer is None:
            w.airflow.decide(f"etl/{run}/approve/-1", ["Approve"], {"id": "admin", "name": "Admin"})
    assert w.settle()["decided_elsewhere"] >= 0 and w.settle() == {"decided_elsewhere": 0}

    recorded = {q: (via, chosen, by) for q, via, chosen, by in w.sql(
        "SELECT question_id, decided_via, chosen, decided_by FROM wecom.questions")}  # fmt: skip
    taps = w.sql("SELECT question_id, outcome, userid FROM wecom.question_taps")
    assert {outcome for _, outcome, _ in taps} <= {"answered", "already_decided"}
    assert w.sql("SELECT count(*) FROM wecom.callback_events WHERE processed_at IS NULL") == [(0,)]
    stats = w.admin.callbacks()
    assert stats["duplicated"] > 0 and stats["dropped"] > 0  # the faults really happened
    for run, (kind, pair) in runs.items():
        key = f"etl/{run}/approve/-1"
        answer = w.airflow.tasks[key].answer
        patches = [p for p in w.airflow.patches if p["task"] == key]
        answered = [t for t in taps if t[0] == key and t[1] == "answered"]
        assert len(patches) <= 1, f"{run} ({kind}) was answered {len(patches)} times"
        by = answer["responded_by_user"]
        assert len(answered) == (1 if by and by["id"] == BRIDGE else 0), f"{run} ({kind}): {answered}"
        if by is None:
            expected = ("timeout", answer["chosen_options"], None)
        elif by["id"] == BRIDGE:
            [(_, _, tapper)] = answered
            expected = ("wecom", answer["chosen_options"], tapper)
        else:
            expected = ("airflow", answer["chosen_options"], "Admin")
        assert recorded[key] == expected, f"{run} ({kind})"
        for userid in pair:
            shown = w.card_of(run, userid)["shown"][userid]
            assert shown and shown.startswith(answer["chosen_options"][0]) or "Timed out" in shown, (
                run,
                shown,
            )

"""wecom_directory_events: contact events in the inbox (stored by the receiver's own code from sealed
deliveries) re-read exactly what they name from the simulator over HTTP and merge it with history, in one
transaction; duplicates and order do not matter; the next full sync finds no drift unless an event was lost."""

from __future__ import annotations

import copy
import json
import time

import psycopg
import pytest
from conftest import ROOT, load_dag, sealed_delivery, serving

from wecom.callbacks.crypto import CallbackCrypto
from wecom.callbacks.receiver import Inbox, Receiver, ReceiverSettings

pytestmark = pytest.mark.airflow
TOKEN, AES_KEY = "eventsToken0001", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"


@pytest.fixture
def db(connections, airflow_db):
    with psycopg.connect(connections["warehouse"], autocommit=True) as conn:
        yield conn


@pytest.fixture
def deliver(simulator):
    """What the receiver does with a delivery from WeCom: verify, decrypt, store once."""
    crypto = CallbackCrypto.from_settings(TOKEN, AES_KEY, simulator.state.config.corp_id)
    receiver = Receiver(ReceiverSettings(crypto, "wecom_warehouse"), Inbox("wecom_warehouse"))

    def send(change_type: str, **fields: object) -> None:
        inner = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
        message = (f"<xml><ToUserName>{crypto.receive_id}</ToUserName><FromUserName>sys</FromUserName>"
                   "<CreateTime>1764480000</CreateTime><MsgType>event</MsgType>"
                   f"<Event>change_contact</Event><ChangeType>{change_type}</ChangeType>{inner}</xml>")  # fmt: skip
        query, body = sealed_delivery(crypto, message, nonce=str(time.monotonic_ns()))
        receiver.receive(query["msg_signature"], query["timestamp"], query["nonce"], body)

    return send


def run(dag_id: str) -> dict:
    dag = load_dag(ROOT / "dags", dag_id)
    state = dag.test().state
    assert state == "success"


def one(db, query, *args):
    return db.execute(query, args).fetchone()[0]


def test_events_rereads_only_what_they_name_and_merges_it_with_history(db, simulator, sim_admin, deliver):
    org = simulator.state.org
    run("wecom_directory_sync")
    users = sorted(org.users)
    renamed, removed, respelled = org.users[users[0]], org.users[users[1]], org.users[users[2]]
    newcomer = {**copy.deepcopy(org.users[users[3]]), "userid": "newhire01", "name": "新同事"}
    department = next(d for d in org.departments if d != 1)
    new_userid = respelled["userid"] + "x"
    sim_admin.mutate(
        {"op": "update_user", "userid": renamed["userid"], "fields": {"name": "改名后"}},
        {"op": "remove_user", "userid": removed["userid"]},
        {"op": "add_user", "user": newcomer},
        {"op": "remove_user", "userid": respelled["userid"]},
        {"op": "add_user", "user": {**copy.deepcopy(respelled), "userid": new_userid}},
        {"op": "rename_department", "id": department, "name": "新部门名"},
    )
    deliver("update_user", UserID=renamed["userid"])
    deliver("update_user", UserID=renamed["userid"])  # a duplicate
    deliver("create_user", UserID="newhire01")  # before the removal it follows: order does not matter
    deliver("delete_user", UserID=removed["userid"])
    deliver("update_user", UserID=respelled["userid"], NewUserID=new_userid)
    deliver("update_party", Id=department, ParentId=org.departments[department]["parentid"])
    calls_before = dict(sim_admin.stats()["calls"])
    run("wecom_directory_events")
    calls = {k: v - calls_before.get(k, 0) for k, v in sim_admin.stats()["calls"].items()}
    assert calls.get("user/list", 0) == 0 and calls.get("department/list", 0) == 0
    assert calls.get("user/get") == 5 and calls.get("department/get") == 1  # one call per id named

    assert one(db, "SELECT name FROM wecom.users WHERE userid = %s", renamed["userid"]) == "改名后"
    assert one(db, "SELECT deleted_at IS NOT NULL FROM wecom.users WHERE userid = %s", removed["userid"])
    assert one(db, "SELECT name FROM wecom.users WHERE userid = 'newhire01'") == "新同事"
    assert one(db, "SELECT count(*) FROM wecom.user_departments WHERE userid = 'newhire01'") == len(
        newcomer["department"]
    )
    assert one(db, "SELECT deleted_at IS NULL FROM wecom.users WHERE userid = %s", new_userid)
    assert one(db, "SELECT name FROM wecom.departments WHERE department_id = %s", department) == "新部门名"
    history = one(db, "SELECT count(*) FROM wecom.users_history WHERE userid = %s", renamed["userid"])
    assert history == 2  # the old name closed, the new one open
    untouched = one(db, "SELECT count(*) FROM wecom.users WHERE version_sync_run_id <> (SELECT min(sync_run_id)"
                        " FROM wecom.sync_runs) AND userid <> ALL(%s)",
                    [renamed["userid"], removed["userid"], "newhire01", new_userid, respelled["userid"]])  # fmt: skip
    assert untouched == 0  # nobody the events did not name was written
    run_row = db.execute(
        "SELECT kind, events_applied, users_added, users_changed, users_removed, departments_changed"
        " FROM wecom.sync_runs ORDER BY sync_run_id DESC LIMIT 1"
    ).fetchone()
    # Five distinct events (the duplicate was stored once): 2 added (the hire, the new userid), 1 changed,
    # 2 removed (the leaver, the old userid), 1 department renamed.
    assert run_row == ("incremental", 5, 2, 1, 2, 1)
    assert one(db, "SELECT count(*) FROM wecom.callback_events WHERE processed_at IS NULL") == 0

    run("wecom_directory_events")  # nothing waiting: nothing happens
    assert one(db, "SELECT count(*) FROM wecom.sync_runs WHERE kind = 'incremental'") == 1
    run("wecom_directory_sync")  # the reconciler finds nothing the events missed
    assert db.execute(
        "SELECT kind, drift FROM wecom.sync_runs ORDER BY sync_run_id DESC LIMIT 1"
    ).fetchone() == (
        "full",
        0,
    )


def test_a_lost_event_shows_as_drift_in_the_next_full_sync(db, simulator, sim_admin, deliver):
    org = simulator.state.org
    run("wecom_directory_sync")
    first, second = sorted(org.users)[:2]
    sim_admin.mutate(
        {"op": "update_user", "userid": org.users[first]["userid"], "fields": {"position": "架构师"}},
        {"op": "update_user", "userid": org.users[second]["userid"], "fields": {"position": "经理"}},
    )
    deliver("update_user", UserID=org.users[first]["userid"])  # the second one's event never arrives
    run("wecom_directory_events")
    run("wecom_directory_sync")
    kind, drift = db.execute(
        "SELECT kind, drift FROM wecom.sync_runs ORDER BY sync_run_id DESC LIMIT 1"
    ).fetchone()
    assert kind == "full" and drift == 1


@pytest.fixture
def receiver_url(simulator, connections):
    """The receiver over real HTTP (uvicorn), storing into the test's warehouse."""
    from fastapi import FastAPI

    from wecom.callbacks.receiver import create_app

    crypto = CallbackCrypto.from_settings(TOKEN, AES_KEY, simulator.state.config.corp_id)
    root = FastAPI()
    root.mount(
        "/wecom", create_app(Receiver(ReceiverSettings(crypto, "wecom_warehouse"), Inbox("wecom_warehouse")))
    )
    with serving(root) as url:
        yield f"{url}/wecom/callback"


def test_org_changes_reach_the_directory_through_real_callbacks(db, simulator, sim_admin, receiver_url):
    """The simulator seals the events with its own implementation of the envelope, duplicates and reorders
    them; after one events run the directory equals WeCom's, without the full sync."""
    org = simulator.state.org
    run("wecom_directory_sync")
    sim_admin.send_callbacks(receiver_url, TOKEN, AES_KEY, duplicate=0.5, reorder=True)
    users = sorted(org.users)
    hire = {**copy.deepcopy(org.users[users[5]]), "userid": "hire2026", "name": "入职"}
    sim_admin.mutate(
        {"op": "add_user", "user": hire},
        {"op": "update_user", "userid": org.users[users[6]]["userid"], "fields": {"name": "改名"}},
        {"op": "move_user", "userid": org.users[users[7]]["userid"], "departments": [1]},
        {"op": "remove_user", "userid": org.users[users[8]]["userid"]},
        {"op": "add_department", "department": {"id": 9001, "name": "新部门", "parentid": 1}},
        {"op": "change_userid", "userid": org.users[users[9]]["userid"], "new_userid": "renamed2026"},
    )
    deadline = time.monotonic() + 30
    while not sim_admin.callbacks()["idle"] and time.monotonic() < deadline:
        time.sleep(0.1)
    stats = sim_admin.callbacks()
    assert stats["failed"] == 0 and stats["delivered"] == stats["events"] + stats["duplicated"]
    assert one(db, "SELECT count(*) FROM wecom.callback_events") == stats["events"]  # duplicates stored once
    run("wecom_directory_events")
    wecom = sim_admin.org()
    active = {u for (u,) in db.execute("SELECT userid FROM wecom.users WHERE deleted_at IS NULL")}
    assert active == {u["userid"] for u in wecom["users"]}
    departments = dict(
        db.execute("SELECT department_id, name FROM wecom.departments WHERE deleted_at IS NULL")
    )
    assert departments == {d["id"]: d["name"] for d in wecom["departments"]}
    memberships = set(db.execute("SELECT userid, department_id FROM wecom.user_departments").fetchall())
    assert memberships == {(u["userid"], d) for u in wecom["users"] for d in u["department"]}


def wait_delivered(sim_admin) -> dict:
    deadline = time.monotonic() + 30
    while not sim_admin.callbacks()["idle"] and time.monotonic() < deadline:
        time.sleep(0.1)
    return sim_admin.callbacks()


def leaders_in_warehouse(db) -> tuple[dict, set, set]:
    """Who leads what, in each of its three stored forms."""
    departments = dict(
        db.execute("SELECT department_id, leaders FROM wecom.departments WHERE deleted_at IS NULL")
    )
    flags = set(
        db.execute("SELECT userid, department_id FROM wecom.user_departments WHERE is_leader").fetchall()
    )
    members = set(
        db.execute("SELECT DISTINCT department_id, unnest(department_leaders) FROM wecom.members").fetchall()
    )
    return departments, flags, members


def test_leader_changes_reach_the_directory_as_wecom_announces_them(db, simulator, sim_admin, receiver_url):
    """Since 2022-08-15 WeCom says nothing of a department when its leaders change: the members whose
    IsLeaderInDept changed get update_user, a leader who leaves delete_user. The events alone must still
    make every stored form of "who leads what" WeCom's, and the next full sync find nothing to correct."""
    org = simulator.state.org
    run("wecom_directory_sync")
    led = {
        d: dept["department_leader"][0] for d, dept in org.departments.items() if dept["department_leader"]
    }
    changed, left = sorted(led)[:2]
    successor = next(u["userid"] for u in org.members_of(changed) if u["userid"] != led[changed])
    sim_admin.send_callbacks(receiver_url, TOKEN, AES_KEY, reorder=True)
    sim_admin.mutate(
        {"op": "set_leader", "department_id": changed, "userids": [successor]},
        {"op": "remove_user", "userid": led[left]},
    )
    stats = wait_delivered(sim_admin)
    assert stats["failed"] == 0
    kinds = {k for (k,) in db.execute("SELECT DISTINCT change_type FROM wecom.callback_events")}
    assert kinds == {"update_user", "delete_user"}  # nothing names a department
    calls_before = dict(sim_admin.stats()["calls"])
    run("wecom_directory_events")
    calls = {k: v - calls_before.get(k, 0) for k, v in sim_admin.stats()["calls"].items()}
    assert calls.get("department/get") == 2  # the two departments whose leaders changed, nothing more

    wecom = sim_admin.org()
    departments, flags, members = leaders_in_warehouse(db)
    assert departments == {d["id"]: d["department_leader"] for d in wecom["departments"]}
    assert departments[changed] == [successor] and departments[left] == []
    assert flags == {
        (u["userid"], d)
        for u in wecom["users"]
        for d, flag in zip(u["department"], u["is_leader_in_dept"], strict=True)
        if flag
    }
    assert members == {(d, leader) for d, people in departments.items() for leader in people} & members
    assert (changed, successor) in members and not any(m[1] == led[left] for m in members)
    run("wecom_directory_sync")
    assert one(db, "SELECT drift FROM wecom.sync_runs ORDER BY sync_run_id DESC LIMIT 1") == 0


@pytest.fixture
def callbacks_on(monkeypatch, simulator, connections) -> None:
    """The wecom connection holds the callback secrets, as once callbacks are turned on."""
    from conftest import use_connections

    secrets = {"callback_token": TOKEN, "callback_aes_key": AES_KEY}
    use_connections(monkeypatch, simulator.url, connections["warehouse"], **secrets)


def test_drift_counts_the_changes_whose_events_were_lost(
    db, simulator, sim_admin, receiver_url, callbacks_on
):
    """N changes whose events never arrived: drift N at the next full sync, a member or a department each,
    however many rows it took; a department rename, which WeCom does not announce, is not drift."""
    org = simulator.state.org
    run("wecom_directory_sync")
    users = sorted(org.users)
    department = next(d for d in sorted(org.departments) if d != 1 and org.departments[d]["parentid"] != 1)
    sim_admin.send_callbacks(receiver_url, TOKEN, AES_KEY, drop=1.0)  # every event lost
    sim_admin.mutate(
        {"op": "move_user", "userid": org.users[users[0]]["userid"], "departments": [1]},  # 3+ rows
        {"op": "update_user", "userid": org.users[users[1]]["userid"], "fields": {"position": "经理"}},
        {
            "op": "add_user",
            "user": {**copy.deepcopy(org.users[users[2]]), "userid": "lost2026", "name": "新"},
        },
        {"op": "move_department", "id": department, "parentid": 1},
        {"op": "rename_department", "id": department, "name": "未通知的改名"},
    )
    assert wait_delivered(sim_admin)["dropped"] == 4  # the rename made no event at all
    run("wecom_directory_events")
    run("wecom_directory_sync")
    assert db.execute(
        "SELECT kind, drift FROM wecom.sync_runs ORDER BY sync_run_id DESC LIMIT 1"
    ).fetchone() == (
        "full",
        4,
    )
    assert (
        one(db, "SELECT name FROM wecom.departments WHERE department_id = %s", department) == "未通知的改名"
    )


def test_drift_shows_callbacks_that_never_arrive(db, simulator, sim_admin, request):
    """A callback token in the connection means callbacks are expected: with a wrong callback URL no event
    ever arrives and no events run ever happens, yet each full sync shows what they missed."""
    run("wecom_directory_sync")
    no_callbacks = one(db, "SELECT drift FROM wecom.sync_runs ORDER BY sync_run_id DESC LIMIT 1")
    assert no_callbacks is None  # without callbacks, nothing is expected of events
    request.getfixturevalue("callbacks_on")
    first, second = sorted(simulator.state.org.users)[:2]
    sim_admin.mutate(
        *(
            {
                "op": "update_user",
                "userid": simulator.state.org.users[u]["userid"],
                "fields": {"position": "新"},
            }
            for u in (first, second)
        )  # fmt: skip
    )
    run("wecom_directory_sync")
    assert one(db, "SELECT count(*) FROM wecom.sync_runs WHERE kind = 'incremental'") == 0
    assert one(db, "SELECT drift FROM wecom.sync_runs ORDER BY sync_run_id DESC LIMIT 1") == 2


def test_a_failing_events_run_alerts_once(db, simulator, sim_admin, deliver, monkeypatch):
    """The directory DAGs alert like every other: a real events run that fails (WeCom refuses the app's
    secret: a configuration error, final at once) sends exactly one alert to the alert users."""
    run("wecom_directory_sync")
    alert_to = sorted(simulator.state.org.users)[0]
    monkeypatch.setenv("WECOM_ALERT_USERS", simulator.state.org.users[alert_to]["userid"])
    deliver("update_user", UserID=simulator.state.org.users[alert_to]["userid"])
    sim_admin.fault("errcode", path="user/get", count=1, errcode=40001)
    sent_before = len(sim_admin.messages())
    state = load_dag(ROOT / "dags", "wecom_directory_events").test().state
    assert state == "failed"
    alerts = sim_admin.messages()[sent_before:]
    assert len(alerts) == 1 and "wecom_directory_events" in json.dumps(alerts[0], ensure_ascii=False)
    assert one(db, "SELECT count(*) FROM wecom.callback_events WHERE processed_at IS NULL") == 1  # kept

"""After real runs of all three DAGs (a robot alert included), no credential is anywhere but its one table:
not in any warehouse table, not in the Airflow metadata DB (XCom, rendered fields, logs of task events), not
in the task output."""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path

import psycopg
import pytest
from conftest import ROOT, conn_json, load_dag, sealed_delivery, wecom_conn

from wecom.directory import tasks as directory_tasks
from wecom.hooks import WeComHook
from wecom.interviews.render import LOCAL_TZ
from wecom_dev import demo_data
from wecom_dev.days import weekday_ahead
from wecom_dev.leaks import files, find_leaks, postgres_rows, sqlite_rows
from wecom_dev.platform import create_platform_schema
from wecom_simulator import SimulatorConfig

ROBOT_KEY = SimulatorConfig().webhook_keys[0]
CALLBACK_TOKEN, CALLBACK_AES_KEY = "leakScanCallbackToken01", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


def test_credentials_appear_only_in_the_private_token_table(
    airflow_db, connections, simulator, sim_admin, monkeypatch, capfd
):
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPS_ROBOT", conn_json("wecom_webhook", host=simulator.url, password=ROBOT_KEY)
    )
    callback = {"callback_token": CALLBACK_TOKEN, "callback_aes_key": CALLBACK_AES_KEY}
    monkeypatch.setenv("AIRFLOW_CONN_WECOM_DEFAULT", wecom_conn(simulator.url, **callback))
    org = simulator.state.org
    today = weekday_ahead(1)  # ahead of the clock: the reminders are sent, not expired
    with psycopg.connect(connections["warehouse"], autocommit=True) as conn:
        create_platform_schema(conn)
        demo_data.load(
            conn, demo_data.generate(org, first_day=today, days=2, interviewers=20, per_day=10, seed=7)
        )
    sim_admin.revoke_tokens()  # a refresh mid-run: two tokens to look for
    assert load_dag(ROOT / "dags", "wecom_directory_sync").test().get_state() == "success"
    sim_admin.revoke_tokens()
    digest = load_dag(ROOT / "dags", "interview_daily_digest")
    conf = {
        "day": today.isoformat(),
        "dry_run": False,
        "leader_summary": True,
        "only_users": [],
        "language": "zh",
    }
    assert digest.test(run_conf=conf).get_state() == "success"
    reminders = load_dag(ROOT / "dags", "interview_reminders")
    assert (
        reminders.test(logical_date=datetime.combine(today, time(9, 33), LOCAL_TZ)).get_state() == "success"
    )
    assert load_dag(ROOT / "tests" / "dags", "wecom_robot_alert").test().get_state() == "failed"
    # A contact callback through the receiver (settings from the connection, as deployed) and the events DAG.
    from wecom.callbacks.receiver import Receiver, settings_from_connection

    receiver = Receiver(settings_from_connection())
    userid = next(iter(org.users))
    message = f"<xml><Event>change_contact</Event><ChangeType>update_user</ChangeType><UserID>{userid}</UserID></xml>"
    query, body = sealed_delivery(receiver.settings.crypto, message)
    receiver.receive(query["msg_signature"], query["timestamp"], query["nonce"], body)
    assert load_dag(ROOT / "dags", "wecom_directory_events").test().get_state() == "success"
    assert sim_admin.stats()["delivered"] > 0 and sim_admin.robot_messages()

    secrets = {
        **sim_admin.credentials(),
        "callback token": CALLBACK_TOKEN,
        "callback AES key": CALLBACK_AES_KEY,
    }
    assert len(secrets) >= 6  # the app secret, the robot key, two tokens or more, the callback secrets
    output = capfd.readouterr()
    places = [*postgres_rows(connections["warehouse"]), *sqlite_rows(Path(airflow_db) / "airflow.db")]
    places += [("task output", output.out), ("task errors", output.err)]
    leaks, scanned = find_leaks(secrets, places)
    assert leaks == [] and scanned > 300  # every row really was read
    with psycopg.connect(connections["warehouse"]) as conn:  # the one place tokens do live
        stored = {t for (t,) in conn.execute("SELECT access_token FROM wecom_private.access_tokens")}
    assert stored and stored <= set(simulator.state.tokens)


@pytest.mark.parametrize(
    "query", ["SELECT * FROM wecom_private.access_tokens", "SELECT mobile FROM wecom.users"]
)
def test_the_analyst_role_reads_nothing_private(connections, query):
    directory_tasks.migrate()
    with psycopg.connect(connections["warehouse"], autocommit=True) as conn:
        WeComHook().get_access_token()
        conn.execute("SET ROLE wecom_analyst")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(query)


def test_the_scan_finds_a_planted_credential(db_url, tmp_path):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE notes (id int, body text)")
        conn.execute("INSERT INTO notes VALUES (1, 'ok'), (2, 'token=abc.SECRET.def')")
        conn.execute("CREATE SCHEMA wecom_private; CREATE TABLE wecom_private.t (v text)")
        conn.execute("INSERT INTO wecom_private.t VALUES ('SECRET')")  # its one allowed place
    (tmp_path / "task.log").write_text("line\nAuthorization: SECRET\n")
    places = [*postgres_rows(db_url), *files(tmp_path)]
    leaks, scanned = find_leaks({"the token": "SECRET"}, places)
    assert sorted(leaks) == sorted([("the token", "public.notes"), ("the token", str(tmp_path / "task.log"))])
    assert scanned == 3

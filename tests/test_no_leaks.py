"""After real runs of all three DAGs (a robot alert included), no credential is anywhere but its one table:
not in any warehouse table, not in the Airflow metadata DB (XCom, rendered fields, logs of task events), not
in the task output."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from pathlib import Path

import psycopg
import pytest
from conftest import ROOT, conn_json, load_dag

from wecom.directory import tasks as directory_tasks
from wecom.hooks import WeComHook
from wecom.interviews import demo_data
from wecom.interviews.render import LOCAL_TZ
from wecom.interviews.tasks import create_platform_schema
from wecom.simulator import SimulatorConfig

ROBOT_KEY = SimulatorConfig().webhook_keys[0]


def warehouse_text(url: str) -> list[tuple[str, str]]:
    """(table, row as text) for every row of every table outside wecom_private."""
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'wecom_private')"
        ).fetchall()
        rows = []
        for schema, table in tables:
            for (text,) in conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t'):  # noqa: S608
                rows.append((f"{schema}.{table}", text))
        return rows


def metadata_text(home: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(home / "airflow.db") as db:
        rows = []
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in db.execute(f'SELECT * FROM "{table}"'):  # noqa: S608
                rows.append((table, " ".join(str(v) for v in row)))
        return rows


def test_credentials_appear_only_in_the_private_token_table(
    airflow_db, connections, simulator, sim_admin, monkeypatch, capfd
):
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPS_ROBOT", conn_json("wecom_webhook", host=simulator.url, password=ROBOT_KEY)
    )
    org = simulator.state.org
    today = date(2026, 12, 1)
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
    assert reminders.test(logical_date=datetime(2026, 12, 1, 9, 33, tzinfo=LOCAL_TZ)).get_state() == "success"
    assert load_dag(ROOT / "tests" / "dags", "wecom_robot_alert").test().get_state() == "failed"
    assert sim_admin.stats()["delivered"] > 0 and sim_admin.robot_messages()

    secrets = {"app secret": simulator.state.config.secret, "robot key": ROBOT_KEY}
    secrets |= {f"token {i}": token for i, token in enumerate(simulator.state.tokens)}
    assert len(secrets) >= 4
    output = capfd.readouterr()
    places = warehouse_text(connections["warehouse"]) + metadata_text(Path(airflow_db))
    places += [("task output", output.out), ("task errors", output.err)]
    leaks = [(name, where) for name, secret in secrets.items() for where, text in places if secret in text]
    assert leaks == []
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

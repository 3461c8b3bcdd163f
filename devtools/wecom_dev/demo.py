"""``make demo``, ``make airflow`` and ``make demo-stop``: the whole pipeline on an embedded default.

PostgreSQL (the one given in WECOM_TEST_DATABASE_URL, else 127.0.0.1:5432, else a private cluster in
``.demo/pg``), the WeCom simulator with a demo org, demo interviews, the callback receiver the simulator
posts WeCom's callbacks to, and an AIRFLOW_HOME in ``.demo/airflow`` with the connections (``wecom_default``
with callback secrets made for the run and a ``calendar_organizer``) and the ``wecom_api`` pool. ``run``
syncs the directory, sends today's digest and a window of reminders (answerable cards) with ``airflow dags
test``, then shows the two-way loop: two cards tapped and their answers, a member's move reaching the
directory through the callbacks, and the two interviews cancelled and moved on the platform (corrected
cards, notices, the interviewers' WeCom calendars before and after), and prints a summary with where to
look (a private cluster stays up for the queries it suggests; ``stop`` stops it). ``airflow`` runs
``airflow standalone`` on the same setup until Ctrl-C or SIGTERM, then stops everything it started. All can
be run again. ``WECOM_DEMO_DIR`` moves ``.demo``.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import monotonic, sleep

import psycopg
import requests

from wecom import sql
from wecom.interviews.render import LOCAL_TZ
from wecom_dev import demo_data
from wecom_dev.airflow_cli import BIN, WINDOW, airflow, dags_test
from wecom_dev.demo_loop import Loop
from wecom_dev.environment import (
    org_args,
    postgres_conn_json,
    simulator_process,
    start_receiver,
    wecom_conn_json,
)
from wecom_dev.platform import create_platform_schema
from wecom_dev.postgres import Server, find_server, running_cluster
from wecom_dev.processes import MARKER, free_port, report_stop, stop_tree, sweep
from wecom_simulator import SimulatorAdmin
from wecom_simulator.org import Org, generate_org

ROOT = Path(__file__).resolve().parents[2]
DEMO = Path(os.environ.get("WECOM_DEMO_DIR") or ROOT / ".demo").resolve()
AIRFLOW_MARKER = "WECOM_DEMO_AIRFLOW"
ORG = {"users": 300, "departments": 30, "seed": 1}
DATABASE = "wecom_demo"


def database(server: Server) -> str:
    """The demo database, created on first use and kept (so a second run and the UI see the same data)."""
    with psycopg.connect(server.url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
    return server.database_url(DATABASE)


def airflow_env(db_url: str, sim_url: str, **wecom_extra: str) -> dict[str, str]:
    home = DEMO / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_WECOM_DEFAULT": wecom_conn_json(sim_url, **wecom_extra),
        "AIRFLOW_CONN_WECOM_WAREHOUSE": postgres_conn_json(db_url),
        "AIRFLOW_CONN_INTERVIEW_SOURCE": postgres_conn_json(db_url),
    }  # fmt: skip


def callback_secrets() -> dict[str, str]:
    """The app's callback Token and EncodingAESKey, made for the run (the simulator and the receiver live as
    long as it does). Demo secrets, but secrets: never printed."""
    return {
        "callback_token": secrets.token_hex(16),
        "callback_aes_key": base64.b64encode(secrets.token_bytes(32)).decode()[:43],
    }


def calendar_organizer(org: Org) -> str:
    """Whose WeCom calendar holds the interviews: the leader of the root department."""
    return org.departments[1]["department_leader"][0]


@contextmanager
def receiver(env: dict[str, str], sim_url: str, secret: dict[str, str]) -> Iterator[str]:
    """``wecom-callback-receiver`` on a free port (its log in ``.demo``), with the simulator posting WeCom's
    callbacks to it: contact changes and card taps land in ``wecom.callback_events``. Yields its URL."""
    port = free_port()
    with open(DEMO / "receiver.log", "ab") as log:
        process = start_receiver(port, log, env, new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/wecom/callback"
        SimulatorAdmin(sim_url).send_callbacks(url, secret["callback_token"], secret["callback_aes_key"])
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextmanager
def setup(keep_database: bool) -> Iterator[tuple[Server, str, str, dict[str, str]]]:
    """Database, simulator, demo data, Airflow home and the callback receiver; a private cluster started
    here is stopped at the end unless ``keep_database`` (then ``stop`` stops it)."""
    org = generate_org(**ORG)
    server = find_server(data_dir=DEMO / "pg")
    try:
        db_url = database(server)
        with simulator_process(
            *org_args(**ORG), "--port", os.environ.get("WECOM_SIMULATOR_PORT", "0")
        ) as sim_url:
            seed_interviews(db_url, org)
            forget_earlier_calendar(db_url)
            secret = callback_secrets()
            organizer = calendar_organizer(org)
            env = airflow_env(db_url, sim_url, calendar_organizer=organizer, **secret)
            print(f"PostgreSQL: {db_url}\nWeCom simulator: {sim_url} (what WeCom shows: /_admin/cards, "
                  "/_admin/calendar?userid=..., /_admin/messages?userid=...)")  # fmt: skip
            print("Preparing Airflow (metadata DB, pool wecom_api)...", flush=True)
            airflow(env, "db", "migrate")
            airflow(env, "pools", "set", "wecom_api", "4", "WeCom API calls")
            with receiver(env, sim_url, secret) as callback_url:
                print(f"Callback receiver: {callback_url} (the app's callback URL: WeCom posts card taps and"
                      f" contact changes there; log: {DEMO / 'receiver.log'})\nInterview calendar organizer:"
                      f" {organizer} (leader of {org.departments[1]['name']})")  # fmt: skip
                yield server, db_url, sim_url, env
    finally:
        if server.started_here and not keep_database:
            server.stop()


def seed_interviews(db_url: str, org: Org) -> None:
    """Four weeks of interviews around today, each day's the same whenever generated (an earlier run's
    announcements stay true); the interviews earlier demo runs added are kept as they left them."""
    today = datetime.now(LOCAL_TZ).date()
    data = demo_data.generate(org, first_day=today - timedelta(days=14), days=28, interviewers=120, per_day=40,
                              seed=ORG["seed"], by_day=True)  # fmt: skip
    with psycopg.connect(db_url, autocommit=True) as conn:
        create_platform_schema(conn)
        demo_data.load(conn, data, keep_from=demo_data.LOOP_FIRST_ID)


def forget_earlier_calendar(db_url: str) -> None:
    """Each run's simulator is a new WeCom: the interview calendar an earlier run made is not in it. Retire
    it as the pipeline does when WeCom says its calendar is gone, so that the interviews go into a new one."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('wecom.app_calendars')").fetchone()[0] is None:
            return
        note = "the demo started a new WeCom simulator: this calendar is not in it"
        params = {"cal_id": None, "organizer": "", "note": note}  # organizer <> '': every current calendar
        conn.execute(sql.statement("interview/calendar.sql", "retire_calendars"), params)


def next_working_day() -> date:
    day = datetime.now(LOCAL_TZ).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def run() -> None:
    began = monotonic()
    with setup(keep_database=True) as (server, db_url, sim_url, env):
        run_started = datetime.now(UTC)
        day = next_working_day()
        first = datetime.combine(day, time(8, 23), tzinfo=LOCAL_TZ)  # reminds of 08:53-09:03 interviews
        dags_test(env, "the directory sync", "wecom_directory_sync")
        dags_test(env, "today's digest", "interview_daily_digest")
        loop = Loop.add(db_url, day)
        # A manual run's data interval is the one that ends at the date given.
        dags_test(env, f"reminders for {first:%Y-%m-%d %H:%M}-{first + WINDOW:%H:%M}", "interview_reminders",
                  (first + WINDOW).isoformat())  # fmt: skip
        transferred = loop.show(db_url, sim_url, env, first + WINDOW)
        summary(db_url, sim_url, run_started, loop, transferred)
        print(f"\n`make demo` took {monotonic() - began:.0f} s.")
        if server.data_dir is not None:
            print(
                f"\nThe private PostgreSQL in {DEMO / 'pg'} keeps running for these queries and `make airflow`;"
                " stop it with `make demo-stop`."
            )


def summary(db_url: str, sim_url: str, run_started: datetime, loop: Loop, transferred: str) -> None:
    with psycopg.connect(db_url) as conn:
        one = lambda q, *a: conn.execute(q, a).fetchone()[0]  # noqa: E731
        members = one("SELECT count(*) FROM wecom.users WHERE deleted_at IS NULL")
        departments = one("SELECT count(*) FROM wecom.departments WHERE deleted_at IS NULL")
        ledger = dict(conn.execute("SELECT split_part(dedup_key, ':', 1) || '/' || status, count(*)"
                                   " FROM wecom.message_log GROUP BY 1").fetchall())  # fmt: skip
        unmapped = one("SELECT count(*) FROM wecom.unmapped_interviewers")
        cards = one("SELECT count(*) FROM wecom.reminder_cards WHERE created_at >= %s", run_started)
        as_markdown = one("SELECT count(*) FROM wecom.message_log WHERE errcode = 43012 AND status = 'sent'"
                          " AND sent_at >= %s", run_started)  # fmt: skip
        organizer = one("SELECT max(organizer) FROM wecom.app_calendars WHERE retired_at IS NULL")
        in_calendar = one("SELECT count(*) FROM wecom.calendar_sync WHERE state = 'synced'"
                          " AND sync_state = 'in step' AND starts_at > now()")  # fmt: skip
    stats = SimulatorAdmin(sim_url).stats()
    print("\n=== WeCom demo: done ===")
    print(f"Directory synced: {members} members, {departments} departments")
    print(f"In the delivery ledger (every demo run so far): {ledger.get('digest/sent', 0)} digests, "
          f"{ledger.get('leader-digest/sent', 0)} leader summaries, {ledger.get('reminder/sent', 0)} reminders, "
          f"{ledger.get('change/sent', 0)} change notices, {ledger.get('decline/sent', 0)} declines told and "
          f"{ledger.get('feedback/sent', 0)} feedback nudges sent; "
          f"{sum(v for k, v in ledger.items() if k.endswith('/expired'))} expired")  # fmt: skip
    fallback = f"; {as_markdown} went out as markdown instead (errcode 43012)" if as_markdown else ""
    print(f"Reminder cards this run: {cards}, answerable in WeCom (the app's callback URL is the receiver)"
          f"{fallback}")  # fmt: skip
    print(f"In the app's WeCom calendar (organizer {organizer}, interviewers as attendees): {in_calendar}"
          " upcoming interviews, each in step with the platform (wecom.calendar_sync)")  # fmt: skip
    print(f"Interviewers without a WeCom mapping: {unmapped}")
    print(f"This run: the simulator delivered {stats['delivered']} messages (what an earlier run sent is never "
          f"sent again), silently dropped {stats['silent_drops']}, and was asked for "
          f"{stats['calls'].get('gettoken', 0)} token(s)")  # fmt: skip
    ids = f"{loop.cancelled}, {loop.moved}"
    print(f"\nLook in SQL (psql {db_url}):")
    for query in (
        "SELECT * FROM wecom.department_headcount ORDER BY total_headcount DESC LIMIT 10;",
        "SELECT * FROM wecom.members LIMIT 10;",
        "SELECT * FROM wecom.sync_runs;",
        "SELECT * FROM wecom.message_deliveries;",
        "SELECT * FROM wecom.unmapped_interviewers;",
        "-- the loop: the answers, the declines and who was told, the changes and their notices, the cards",
        "SELECT * FROM wecom.reminder_status WHERE {loop};",
        "SELECT * FROM wecom.reminder_declines;",
        "SELECT * FROM wecom.interview_changes WHERE {loop};",
        "SELECT task_id, userid, correction, correction_status FROM wecom.reminder_cards WHERE {loop};",
        "SELECT * FROM wecom.calendar_sync ORDER BY starts_at LIMIT 20;",
        "SELECT * FROM wecom.users_history WHERE userid = '{member}' ORDER BY valid_from;",
        "SELECT event_id, event, change_type, userid, received_at, processed_at, processed_by"
        " FROM wecom.callback_events ORDER BY event_id DESC LIMIT 10;",
    ):
        print("  " + query.format(loop=f"interview_id IN ({ids})", member=transferred))
    print("Look in WeCom, the simulator's admin pages (JSON). This run's simulator stopped with it: `make"
          " airflow` starts one on the same data and prints its URL; there the same pages show what that"
          " session sends:")  # fmt: skip
    for page in (
        "/_admin/cards  (every card, and what each recipient sees instead of its buttons)",
        f"/_admin/calendar?userid={loop.b.userid}  (one member's WeCom calendar)",
        f"/_admin/messages?userid={loop.a.userid}  (what one member received: reminders, notices)",
        "/_admin/callbacks  (the callbacks WeCom posted to the receiver)",
    ):
        print(f"  {page}")
    print("Then `make airflow` to see the DAGs in the Airflow UI.")


def standalone() -> None:
    """``airflow standalone`` until Ctrl-C or SIGTERM; then every process it started is stopped, within
    about 15 s. A terminal's Ctrl-C reaches only us (and make): standalone, the simulator and PostgreSQL
    run in sessions of their own and are stopped in order, one signal each (Airflow's components hang on
    a second one: see ``stop_tree``)."""
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell may start us with it ignored
        signal.signal(sig, _interrupt)
    # Everything started from here on carries the marker (the simulator and a private PostgreSQL too), so
    # that the last check sees whatever outlived its stop.
    marker = os.environ.setdefault(MARKER, uuid.uuid4().hex)
    try:
        with setup(keep_database=False) as (_, db_url, _, env):
            if not _directory_synced(db_url):  # the digests need someone to write to
                print("Syncing the directory first (airflow dags test wecom_directory_sync)...", flush=True)
                airflow(env, "dags", "test", "wecom_directory_sync")
            _run_standalone(env)
    except KeyboardInterrupt:
        pass
    finally:  # also when standalone failed or exited by itself
        _stopping()
        killed, left = sweep(marker)
        if killed:
            print(f"Killed what was still running: pids {killed}", flush=True)
        print("Nothing left running." if not left else f"Still running: pids {left}", flush=True)


def _run_standalone(env: dict[str, str]) -> None:
    # standalone starts its components as `airflow ...` from PATH: the venv's bin must be on it. Airflow's
    # processes carry a marker of their own: the sweep for strays after stopping them must not take the
    # database and the simulator, which stop in order afterwards.
    airflow_marker = uuid.uuid4().hex
    env = {**env, AIRFLOW_MARKER: airflow_marker, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    port = env.setdefault("AIRFLOW__API__PORT", "8080")
    # Task processes reach the api-server's execution API, on the same port.
    env.setdefault("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"http://localhost:{port}/execution/")
    log_path = DEMO / "airflow" / "standalone.log"
    process = None
    try:
        with open(log_path, "ab") as log:
            process = subprocess.Popen([str(BIN / "airflow"), "standalone"], env=env, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        _serve(process, env, log_path)
    finally:
        _stopping()
        if process is not None:
            print("Stopping airflow standalone...", flush=True)
            print(report_stop(stop_tree(process, airflow_marker, AIRFLOW_MARKER)), flush=True)


def _directory_synced(db_url: str) -> bool:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT to_regclass('wecom.users') IS NOT NULL").fetchone()[0] and bool(
            conn.execute("SELECT EXISTS (SELECT 1 FROM wecom.users)").fetchone()[0]
        )


def _interrupt(signum: int, frame: object) -> None:
    _stopping()
    raise KeyboardInterrupt


def _stopping() -> None:
    """From now on Ctrl-C or SIGTERM again no longer interrupts the stop halfway: it is bounded anyway."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _patience)


def _patience(signum: int, frame: object) -> None:
    # os.write, not print: a handler that prints while the interrupted code prints fails (reentrant call).
    os.write(sys.stderr.fileno(), b"Stopping already (about 15 s at most)...\n")


def _serve(process: subprocess.Popen, env: dict[str, str], log_path: Path) -> None:
    port = env.get("AIRFLOW__API__PORT", "8080")
    url = f"http://localhost:{port}"
    print(f"Starting airflow standalone (log: {log_path})...", flush=True)
    deadline = monotonic() + 300
    while not _healthy(url):
        if process.poll() is not None:
            raise SystemExit(f"airflow standalone exited ({process.returncode}); see {log_path}")
        if monotonic() > deadline:
            raise SystemExit(f"the Airflow UI did not come up in 300 s; see {log_path}")
        sleep(1)
    passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    print(
        f"\nAirflow is ready: {url}\n  user: admin\n  password: in {passwords}\nCtrl-C stops it.", flush=True
    )
    process.wait()
    raise SystemExit(f"airflow standalone exited ({process.returncode}); see {log_path}")


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def stop() -> None:
    """Stop the private PostgreSQL a demo left running (nothing to do when the demo used another server)."""
    server = running_cluster(DEMO / "pg")
    if server is None:
        print("No demo PostgreSQL is running.")
        return
    server.stop()
    print(f"Stopped the private PostgreSQL in {DEMO / 'pg'}.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m wecom_dev.demo", description=__doc__)
    parser.add_argument("command", choices=["run", "airflow", "stop", "clean"], nargs="?", default="run")
    command = parser.parse_args(argv).command
    if command == "clean":
        stop()
        shutil.rmtree(DEMO, ignore_errors=True)
    elif command == "stop":
        stop()
    elif command == "airflow":
        standalone()
    else:
        run()


if __name__ == "__main__":
    main()

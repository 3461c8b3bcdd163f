"""Context managers that stand up the pieces benchmarks and the demo need: a scratch warehouse
database, a simulator in its own process, and the Airflow connections pointing at both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import requests

from wecom_dev.postgres import find_server
from wecom_dev.processes import free_port
from wecom_simulator.server import SimulatorConfig


def postgres_conn_json(url: str) -> str:
    parts = urlsplit(url)
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": parts.hostname,
            "port": parts.port or 5432,
            "login": parts.username or "postgres",
            "password": parts.password or "",
            "schema": parts.path.lstrip("/"),
        }
    )


def wecom_conn_json(url: str, config: SimulatorConfig | None = None, **extra: object) -> str:
    config = config or SimulatorConfig()
    extra = {"agent_id": config.agent_id, **extra}
    return json.dumps(
        {
            "conn_type": "wecom",
            "host": url,
            "login": config.corp_id,
            "password": config.secret,
            "extra": {k: v for k, v in extra.items() if v is not None},
        }
    )


def robot_conn_json(url: str, config: SimulatorConfig | None = None) -> str:
    """A ``wecom_webhook`` connection to one of the simulator's group robots."""
    config = config or SimulatorConfig()
    return json.dumps({"conn_type": "wecom_webhook", "host": url, "password": config.webhook_keys[0]})


@contextmanager
def scratch_database(prefix: str = "wecom_bench") -> Iterator[str]:
    """A new database on whatever server answers (or a private one), dropped afterwards."""
    server = find_server()
    url = server.create_database(prefix)
    try:
        yield url
    finally:
        server.drop_database(url)
        server.stop()


def org_args(users: int, departments: int, seed: int = 1) -> tuple[str, ...]:
    """``wecom-simulator`` arguments for an org of this size (the same org ``generate_org`` makes)."""
    return ("--users", str(users), "--departments", str(departments), "--seed", str(seed))


@contextmanager
def simulator_process(*args: str) -> Iterator[str]:
    """``wecom-simulator`` in its own process (no GIL shared with the client); yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "wecom_simulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # stopped by us, after its clients, not by a terminal's Ctrl-C
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if "listening on " not in line:
            raise RuntimeError(f"the simulator did not start: {line!r}")
        yield line.split("listening on ")[1].split()[0]
    finally:
        process.terminate()
        process.wait(10)


def start_receiver(
    port: int, out: IO | int | None = None, env: dict[str, str] | None = None, *, new_session: bool = False
) -> subprocess.Popen:
    """``wecom-callback-receiver`` as deployed, in its own process, once its ``/health`` answers (the
    caller stops it: a chaos run kills and restarts it on the same port). ``new_session``: out of the
    caller's process group, so a terminal's Ctrl-C reaches only the caller, which stops it in order."""
    command = [str(Path(sys.executable).parent / "wecom-callback-receiver"), "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=new_session
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"wecom-callback-receiver did not come up on port {port}")
        time.sleep(0.1)


@contextmanager
def airflow_connections(**connections: str) -> Iterator[None]:
    """Set AIRFLOW_CONN_<ID> variables for the duration (ids given as keyword names)."""
    names = {f"AIRFLOW_CONN_{conn_id.upper()}": value for conn_id, value in connections.items()}
    previous = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def callback_receiver(sim_url: str, db_url: str, **callback_secrets: str) -> Iterator[str]:
    """The simulator as ``wecom_default`` (with these callback secrets, a per-process token store) and
    ``db_url`` as ``wecom_warehouse``, for this process and for ``wecom-callback-receiver`` started in
    its own; yields the receiver's callback URL and stops it afterwards."""
    conns = {
        "wecom_default": wecom_conn_json(sim_url, token_store="memory", **callback_secrets),
        "wecom_warehouse": postgres_conn_json(db_url),
    }
    port = free_port()
    with airflow_connections(**conns):
        receiver = start_receiver(port, subprocess.DEVNULL, dict(os.environ))
        try:
            yield f"http://127.0.0.1:{port}/wecom/callback"
        finally:
            receiver.terminate()
            receiver.wait(10)

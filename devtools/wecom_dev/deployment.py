"""Airflow as it runs in production, minus Docker, on one machine: PostgreSQL as the metadata database,
the api-server, scheduler, dag-processor, triggerer and Celery workers on Redis, plus the WeCom simulator
and a warehouse database. Used by ``make e2e``; everything started is stopped again, and checked gone.

The same commands as ``docker-compose.yaml`` runs, with the same kind of configuration (environment
variables); only the addresses differ.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from wecom_dev.broker import redis_answers, redis_server_command
from wecom_dev.environment import postgres_conn_json, robot_conn_json, simulator_process, wecom_conn_json
from wecom_dev.postgres import Server, find_server
from wecom_dev.processes import MARKER, free_port, report_stop, stop_all

# The callback receiver's secrets in this deployment (the e2e test seals WeCom's deliveries with them).
CALLBACK_SECRETS = {
    "callback_token": "e2eCallbackToken01",
    "callback_aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
}
# The question bridge's Airflow account (role "user": enough to answer a question that assigns nobody).
BRIDGE_LOGIN = "wecom_bridge"
# Airflow's simple auth manager keeps every user's password in this file of AIRFLOW_HOME: the bridge's is
# written before the api-server starts, the admin's is generated into it on the api-server's first start.
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")


@dataclass
class Deployment:
    """What ``deployment()`` started: addresses, the environment every Airflow process shares, and logs."""

    home: Path
    env: dict[str, str]
    api_url: str
    simulator_url: str
    warehouse_url: str
    metadata_url: str
    marker: str
    bridge_password: str = ""
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    _token: str | None = None

    @property
    def logs(self) -> Path:
        return self.home / "process-logs"

    def airflow(self, *args: str, check: bool = True) -> str:
        """Run an ``airflow`` CLI command as an operator would; its output."""
        result = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"`airflow {' '.join(args)}` failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}"
            )
        return result.stdout

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """The REST API (``/api/v2/...``), logged in as the admin user."""
        if self._token is None:
            passwords = json.loads((self.home / PASSWORDS_FILE).read_text())
            answer = requests.post(f"{self.api_url}/auth/token",
                                   json={"username": "admin", "password": passwords["admin"]}, timeout=30)  # fmt: skip
            answer.raise_for_status()
            self._token = answer.json()["access_token"]
        response = requests.request(method, f"{self.api_url}/api/v2/{path}", timeout=60,
                                    headers={"Authorization": f"Bearer {self._token}"}, **kwargs)  # fmt: skip
        if response.status_code >= 400:
            raise RuntimeError(f"{method} /api/v2/{path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def wait(self, condition: Any, timeout: float, what: str) -> None:
        """Poll ``condition`` every second; fail early if an Airflow process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if condition():
                return
            time.sleep(1)
        raise TimeoutError(f"waited {timeout:.0f} s for {what}; see the logs in {self.logs}")

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"Airflow processes exited: {dead}; see {self.logs}")


def _start(deployment: Deployment, name: str, command: list[str], env: dict[str, str]) -> None:
    deployment.logs.mkdir(parents=True, exist_ok=True)
    log = open(deployment.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
    deployment.processes[name] = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                  start_new_session=True)  # fmt: skip
    log.close()


def airflow_env(home: Path, metadata_url: str, broker_url: str, api_port: int, queue: str) -> dict[str, str]:
    sqlalchemy_url = metadata_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "WECOM_"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy_url,
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + sqlalchemy_url,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        # A queue of this run's own: a task left on the broker by an earlier, killed run is never picked up.
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__FERNET_KEY": _fernet_key(),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"admin:admin,{BRIDGE_LOGIN}:user",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        # Time runs faster here than in production: retries (exponential backoff) wait at most 5 s.
        "AIRFLOW__CORE__MAX_TASK_RETRY_DELAY": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
    }  # fmt: skip


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


@contextmanager
def deployment(
    home: Path,
    *,
    simulator_args: tuple[str, ...] = (),
    workers: int = 2,
    wecom_extra: dict[str, Any] | None = None,
) -> Iterator[Deployment]:
    """Start everything, wait until the api-server answers and the DAGs are parsed; stop it all after.
    ``wecom_extra``: more extras on ``wecom_default`` (e.g. ``calendar_organizer``)."""
    marker = secrets.token_hex(6)
    home.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        server: Server = find_server(data_dir=home / "pg")
        stack.callback(server.stop)
        metadata_url = server.create_database("wecom_e2e_meta")
        stack.callback(server.drop_database, metadata_url)
        warehouse_url = server.create_database("wecom_e2e_warehouse")
        stack.callback(server.drop_database, warehouse_url)
        sim_url = stack.enter_context(simulator_process(*simulator_args))

        processes: dict[str, subprocess.Popen] = {}
        broker = ("127.0.0.1", 6379)
        if not redis_answers(*broker):
            broker = ("127.0.0.1", free_port())
        api_port = free_port()
        env = airflow_env(home / "airflow", metadata_url, f"redis://{broker[0]}:{broker[1]}/0", api_port,
                          queue=f"wecom-e2e-{marker}")  # fmt: skip
        bridge_password = _bridge_account(home / "airflow")
        env |= {
            MARKER: marker,
            "AIRFLOW_CONN_WECOM_DEFAULT": wecom_conn_json(sim_url, **CALLBACK_SECRETS, **(wecom_extra or {})),
            "AIRFLOW_CONN_WECOM_WAREHOUSE": postgres_conn_json(warehouse_url),
            "AIRFLOW_CONN_INTERVIEW_SOURCE": postgres_conn_json(warehouse_url),
            # Alerts to a group robot of the simulator; the digest's deadline a minute after its time (07:47).
            "AIRFLOW_CONN_OPS_ROBOT": robot_conn_json(sim_url),
            # The question bridge answers human-in-the-loop tasks through the REST API as its own account.
            "AIRFLOW_CONN_AIRFLOW_API": json.dumps(
                {
                    "conn_type": "http",
                    "host": f"http://127.0.0.1:{api_port}",
                    "login": BRIDGE_LOGIN,
                    "password": bridge_password,
                }
            ),
            "WECOM_ALERT_WEBHOOK_CONN_ID": "ops_robot",
            "WECOM_DIGEST_DEADLINE": "07:48",
        }
        d = Deployment(home=home / "airflow", env=env, api_url=f"http://127.0.0.1:{api_port}",
                       simulator_url=sim_url, warehouse_url=warehouse_url, metadata_url=metadata_url,
                       marker=marker, bridge_password=bridge_password, processes=processes)  # fmt: skip
        stack.callback(lambda: print(report_stop(stop_all(processes, marker)), flush=True))
        if broker[1] != 6379:
            _start(d, "redis", redis_server_command(broker[1]), env)
            d.wait(lambda: redis_answers(*broker), 30, "Redis to answer")
        d.airflow("db", "migrate")
        d.airflow("pools", "set", "wecom_api", "4", "WeCom API calls")
        _start(d, "api-server", [AIRFLOW, "api-server", "--port", str(api_port)], env)
        _start(d, "scheduler", [AIRFLOW, "scheduler"], env)
        _start(d, "dag-processor", [AIRFLOW, "dag-processor"], env)
        _start(d, "triggerer", [AIRFLOW, "triggerer", "--skip-serve-logs"], env)
        for n in range(1, workers + 1):
            _start(d, f"worker-{n}", [AIRFLOW, "celery", "worker", "--celery-hostname", f"worker{n}@%h",
                                      "--queues", env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"], "--skip-serve-logs"],
                   env)  # fmt: skip
        d.wait(lambda: _answers(f"{d.api_url}/api/v2/monitor/health"), 180, "the api-server")
        wanted = {"wecom_directory_sync", "interview_daily_digest", "interview_reminders", "wecom_questions"}
        d.wait(
            lambda: wanted <= {x["dag_id"] for x in d.api("GET", "dags")["dags"]}, 240, "the DAGs to parse"
        )
        yield d


def _bridge_account(airflow_home: Path) -> str:
    """A fresh password for the bridge's account, in the simple auth manager's passwords file (which
    Airflow opens read-write and adds the admin's generated password to); the password."""
    password = secrets.token_urlsafe(24)
    airflow_home.mkdir(parents=True, exist_ok=True)
    path = airflow_home / PASSWORDS_FILE
    path.write_text(json.dumps({BRIDGE_LOGIN: password}) + "\n")
    path.chmod(0o600)
    return password


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False

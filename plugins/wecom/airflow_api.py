"""Airflow's own REST API, as the WeCom question bridge uses it: read a human-in-the-loop task's question and
answer it for the person who tapped a card.

The connection (``airflow_api`` by default, type http) holds the API server's address and the bridge's Airflow
account: ``host`` (e.g. ``http://airflow-apiserver:8080``), ``login``, ``password``. The password and the JWT it
buys are registered as secrets before any use, so neither reaches a log, an exception or XCom. The account
must be one of each asking task's ``assigned_users`` (or the task assigns nobody): README, "Ask in WeCom".
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from wecom.errors import SettingsError, WorkPending
from wecom.redact import redact, register_secret

AIRFLOW_API_CONN_ID = "airflow_api"
WAITING = "awaiting_input"


@dataclass(frozen=True)
class TaskRef:
    """A task instance, as the API's paths name it."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    @property
    def question_id(self) -> str:
        return f"{self.dag_id}/{self.run_id}/{self.task_id}/{self.map_index}"

    def path(self) -> str:
        parts = (quote(self.dag_id, safe=""), quote(self.run_id, safe=""), quote(self.task_id, safe=""))
        return f"/api/v2/dags/{parts[0]}/dagRuns/{parts[1]}/taskInstances/{parts[2]}/{self.map_index}/hitlDetails"


@dataclass(frozen=True)
class Answer:
    """What Airflow said to an answer: ``status`` 200 (taken), 409 (already answered), 4xx (refused)."""

    status: int
    detail: str


class AirflowApi:
    """A client of one Airflow API server; the connection is read on first use."""

    def __init__(self, conn_id: str = AIRFLOW_API_CONN_ID, timeout: float = 10.0) -> None:
        self.conn_id = conn_id
        self.timeout = timeout
        self._session = requests.Session()
        self._settings: tuple[str, str, str] | None = None
        self._token: str | None = None
        self._lock = threading.Lock()

    @property
    def login(self) -> str:
        return self._connection()[1]

    def detail(self, task: TaskRef) -> dict[str, Any] | None:
        """The task's question and answer (``response_received``, ``responded_by_user``, ``chosen_options``,
        ``task_instance.state``); None when Airflow has no such question (the run was deleted)."""
        response = self._call("GET", task.path())
        if response.status_code == 404:
            return None
        _raise_for(response, task)
        return response.json()

    def answer(self, task: TaskRef, chosen: list[str], params_input: dict[str, Any]) -> Answer:
        response = self._call("PATCH", task.path(), {"chosen_options": chosen, "params_input": params_input})
        if response.status_code in (401, 500, 502, 503, 504):
            _raise_for(response, task)
        return Answer(response.status_code, _detail(response))

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        base, _, _ = self._connection()
        for fresh in (False, True):
            headers = {"Authorization": f"Bearer {self._bearer(fresh)}"}
            try:
                response = self._session.request(
                    method, base + path, json=body, headers=headers, timeout=self.timeout
                )
            except requests.RequestException as exc:
                raise WorkPending(f"Airflow's API at {base} did not answer: {type(exc).__name__}") from None
            expired = response.status_code in (401, 403) and "JWT" in response.text
            if not expired or fresh:
                return response
        return response  # pragma: no cover - the loop always returns

    def _bearer(self, fresh: bool) -> str:
        with self._lock:
            if self._token is None or fresh:
                base, login, password = self._connection()
                try:
                    response = self._session.post(
                        f"{base}/auth/token",
                        json={"username": login, "password": password},
                        timeout=self.timeout,
                    )
                except requests.RequestException as exc:
                    raise WorkPending(
                        f"Airflow's API at {base} did not answer: {type(exc).__name__}"
                    ) from None
                if response.status_code in (401, 403):
                    raise SettingsError(
                        f"connection {self.conn_id!r}: Airflow refused the login {login!r} ({response.status_code});"
                        " set the bridge account's user name and password (README: Ask in WeCom)"
                    )
                if response.status_code >= 300:
                    raise WorkPending(f"Airflow's /auth/token answered {response.status_code}")
                self._token = response.json()["access_token"]
                register_secret(self._token)
            return self._token

    def _connection(self) -> tuple[str, str, str]:
        if self._settings is None:
            from airflow.sdk import BaseHook

            conn = BaseHook.get_connection(self.conn_id)
            register_secret(conn.password)
            if not (conn.host and conn.login and conn.password):
                raise SettingsError(
                    f"connection {self.conn_id!r} needs host (the API server's URL), login and password"
                    " (the bridge's Airflow account): README, Ask in WeCom"
                )
            host = conn.host if "://" in conn.host else f"{conn.schema or 'http'}://{conn.host}"
            base = host.rstrip("/") + (f":{conn.port}" if conn.port and f":{conn.port}" not in host else "")
            self._settings = (base, conn.login, conn.password)
        return self._settings


def _detail(response: requests.Response) -> str:
    try:
        detail = response.json().get("detail", "")
    except ValueError:
        detail = response.text
    return redact(str(detail))[:300]


def _raise_for(response: requests.Response, task: TaskRef) -> None:
    if response.status_code < 300:
        return
    what = f"Airflow's API answered {response.status_code} for {task.question_id}: {_detail(response)}"
    if response.status_code in (401, 403):
        raise SettingsError(what + " (is the bridge account allowed to read and answer this DAG's tasks?)")
    raise WorkPending(what)


ENDED = {"success", "failed", "skipped", "upstream_failed", "removed"}


def settled(detail: dict[str, Any] | None) -> bool:
    """Whether a question needs nobody any more: answered (by anyone, or the defaults at a timeout), its
    task ended unanswered, or the task gone."""
    if detail is None or detail.get("response_received"):
        return True
    return (detail.get("task_instance") or {}).get("state") in ENDED

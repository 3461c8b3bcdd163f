"""WeComWebhookHook: a group robot (消息推送). The key in its URL is the credential."""

from __future__ import annotations

import threading
import time
from collections import deque
from functools import cached_property
from typing import Any

import requests
from airflow.sdk import BaseHook

from wecom.errors import WeComConfigError, WeComTransientError, error_for
from wecom.hooks import DEFAULT_BASE_URL
from wecom.redact import install_log_redaction, register_secret

ROBOT_PER_MINUTE = 20

_windows: dict[str, deque[list[float]]] = {}
_windows_lock = threading.Lock()


class WeComWebhookHook(BaseHook):
    """Posts to ``/cgi-bin/webhook/send?key=...``; the key is the connection's password, never logged."""

    conn_name_attr = "wecom_webhook_conn_id"
    default_conn_name = "wecom_webhook_default"
    conn_type = "wecom_webhook"
    hook_name = "WeCom group robot"

    def __init__(self, wecom_webhook_conn_id: str = default_conn_name, per_minute: int = ROBOT_PER_MINUTE,
                 window_seconds: float = 60.0) -> None:  # fmt: skip
        super().__init__()
        self.wecom_webhook_conn_id = wecom_webhook_conn_id
        self.per_minute = per_minute
        self.window_seconds = window_seconds

    @cached_property
    def _target(self) -> tuple[str, str]:
        conn = self.get_connection(self.wecom_webhook_conn_id)
        if not conn.password:
            raise WeComConfigError(
                0, "", "webhook/send", f"connection {conn.conn_id!r} has no robot key in password"
            )
        register_secret(conn.password)
        install_log_redaction()
        return (conn.host or DEFAULT_BASE_URL).rstrip("/"), conn.password

    @cached_property
    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        return session

    def _reserve_slot(self, key: str) -> list[float]:
        """Respect 20 messages a minute per robot (within this process; 45009 covers the rest).

        Returns the slot's entry; the caller sets it to the completion time, which is never earlier than
        WeCom's own count of the message.
        """
        while True:
            with _windows_lock:
                window = _windows.setdefault(key, deque())
                now = time.monotonic()
                while window and window[0][0] <= now - self.window_seconds:
                    window.popleft()
                if len(window) < self.per_minute:
                    entry = [now]
                    window.append(entry)
                    return entry
                wait = window[0][0] + self.window_seconds - now
            time.sleep(max(wait, 0.01))

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one robot message; raises on any non-zero errcode (93000/93004 fail at once)."""
        base_url, key = self._target
        slot = self._reserve_slot(key)
        try:
            response = self.session.post(
                f"{base_url}/cgi-bin/webhook/send", params={"key": key}, json=payload, timeout=(5, 15)
            )
        except requests.RequestException as exc:
            raise WeComTransientError(-1, f"network error ({type(exc).__name__})", "webhook/send") from None
        finally:
            slot[0] = time.monotonic()
        if response.status_code != 200:
            raise WeComTransientError(-1, f"HTTP {response.status_code}", "webhook/send")
        try:
            body = response.json()
        except ValueError:
            raise WeComTransientError(-1, "non-JSON body", "webhook/send") from None
        errcode = body.get("errcode", -1) if isinstance(body, dict) else -1
        if errcode != 0:
            raise error_for(errcode, body.get("errmsg", "") if isinstance(body, dict) else "", "webhook/send")
        return body

    def test_connection(self) -> tuple[bool, str]:
        try:
            _ = self._target
        except Exception as exc:  # noqa: BLE001 - shown in the UI
            return False, str(exc)
        return True, "Robot key present (a test would post a message to the group, so none is sent)"

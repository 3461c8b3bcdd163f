"""WeComWebhookHook: a group robot (消息推送). The key in its URL is the credential."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

from wecom.client import BaseWeComHook, exchange
from wecom.connections import WebhookSettings
from wecom.errors import OK, error_for

ROBOT_PER_MINUTE = 20
PATH = "webhook/send"

_windows: dict[str, deque[list[float]]] = {}
_windows_lock = threading.Lock()


class WeComWebhookHook(BaseWeComHook):
    """Posts to ``/cgi-bin/webhook/send?key=...`` within the robot's 20 messages a minute.

    :param wecom_webhook_conn_id: connection of type ``wecom_webhook``: password = the robot key (the
        ``key=`` part of the webhook URL), host = API base URL (optional), extra = HTTP knobs.
    :param per_minute: messages a minute this process sends to one robot (WeCom allows 20).
    :param window_seconds: the length of that window (shorter in tests).
    """

    conn_name_attr = "wecom_webhook_conn_id"
    default_conn_name = "wecom_webhook_default"
    conn_type = "wecom_webhook"
    hook_name = "WeCom group robot"
    settings_class = WebhookSettings
    settings: WebhookSettings

    def __init__(
        self,
        wecom_webhook_conn_id: str = default_conn_name,
        per_minute: int = ROBOT_PER_MINUTE,
        window_seconds: float = 60.0,
    ) -> None:
        super().__init__()
        self.wecom_webhook_conn_id = wecom_webhook_conn_id
        self.per_minute = per_minute
        self.window_seconds = window_seconds

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
        settings = self.settings
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        slot = self._reserve_slot(settings.key)
        try:
            body = exchange(self.session, settings, "POST", PATH, {"key": settings.key}, data)
        finally:
            slot[0] = time.monotonic()
        errcode = body.get("errcode", OK)
        if errcode != OK:
            raise error_for(errcode, body.get("errmsg", ""), PATH)
        return body

    def test_connection(self) -> tuple[bool, str]:
        try:
            _ = self.settings
        except Exception as exc:  # noqa: BLE001 - shown in the UI
            return False, str(exc)
        return True, "Robot key present (a test would post a message to the group, so none is sent)"

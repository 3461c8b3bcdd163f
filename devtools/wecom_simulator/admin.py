"""A small client for the simulator's ``/_admin/`` endpoints, for tests, benchmarks and the demo."""

from __future__ import annotations

from typing import Any

import requests


class SimulatorAdmin:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
        response = self.session.request(
            method, f"{self.url}/_admin/{path}", json=body, params=params or None, timeout=30
        )
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "stats")

    def calls(self, path: str) -> int:
        return self.stats()["calls"].get(path, 0)

    def messages(self, userid: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "messages", **({"userid": userid} if userid else {}))["messages"]

    def drops(self) -> list[dict[str, Any]]:
        return self._call("GET", "drops")["drops"]

    def robot_messages(self) -> list[dict[str, Any]]:
        return self._call("GET", "robot_messages")["messages"]

    def fault(self, kind: str, path: str = "*", count: int = 1, **options: Any) -> None:
        """Inject a fault on ``path`` (under /cgi-bin/, e.g. ``oa/schedule/add``; "*" for any) for the next
        ``count`` calls (-1: until cleared). Before the API runs, so nothing changed in WeCom:
        ``errcode`` (answers errcode=...), ``http502`` (an nginx HTML page), ``reset`` (connection reset),
        ``latency`` (sleeps latency_ms=..., then answers normally). After the API ran, so the change IS
        made (a message sent, a schedule created) but the caller cannot know: ``truncated`` (half of the
        JSON answer) and ``lost_answer`` (no answer at all: the connection is reset)."""
        self._call("POST", "faults", {"kind": kind, "path": path, "count": count, **options})

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def latency(self, ms: float) -> None:
        self._call("POST", "latency", {"ms": ms})

    def revoke_tokens(self) -> int:
        return self._call("POST", "revoke")["revoked"]

    def credentials(self) -> dict[str, str]:
        """Every secret the simulator knows, named: the app secret, robot keys, every token issued."""
        found = self._call("GET", "credentials")
        named = {"app secret": found["secret"]}
        named |= {f"robot key {i}": key for i, key in enumerate(found["webhook_keys"])}
        return named | {f"token {i}": token for i, token in enumerate(found["tokens"])}

    def reset(self) -> None:
        self._call("POST", "reset")

    def org(self) -> dict[str, Any]:
        return self._call("GET", "org")

    def mutate(self, *ops: dict[str, Any]) -> list[str]:
        return self._call("POST", "org", {"ops": list(ops)})["applied"]

    def send_callbacks(self, url: str, token: str, aes_key: str, **faults: Any) -> None:
        """From now on every org change is also POSTed to ``url`` as WeCom's callbacks (faults optional:
        drop, duplicate, reorder, delay_ms)."""
        self._call("POST", "callbacks", {"url": url, "token": token, "aes_key": aes_key, "faults": faults})

    def callbacks(self) -> dict[str, Any]:
        """Events emitted, delivered, retried, failed, dropped, duplicated; ``idle`` when all were tried;
        ``acknowledged`` and ``given_up``: the sha256 of each event's plaintext, as the inbox keys it."""
        return self._call("GET", "callbacks")

    def click(self, userid: str, task_id: str, key: str) -> dict[str, Any]:
        """``userid`` taps button ``key`` on card ``task_id``: WeCom posts the template_card_event callback."""
        return self._call("POST", "click", {"userid": userid, "task_id": task_id, "key": key})

    def cards(self) -> list[dict[str, Any]]:
        """Every button card sent: its keys, the clicks, and what each recipient sees now (``shown``: None
        for the buttons, else the text that replaced them)."""
        return self._call("GET", "cards")["cards"]

    def calendar(self, userid: str) -> list[dict[str, Any]]:
        """The live schedules ``userid`` attends, as they see them: schedule_id, cal_id, organizer, summary,
        start_time / end_time (Unix) and start / end (ISO, Asia/Shanghai), is_whole_day, location,
        description, reminders, sequence, response_status."""
        return self._call("GET", "calendar", userid=userid)["schedules"]

    def schedules(self, include_deleted: bool = True) -> list[dict[str, Any]]:
        """Every schedule in creation order, with all fields as ``oa/schedule/get`` answers them (status 1:
        deleted) plus ``created_at``: what counts duplicates."""
        return self._call("GET", "schedules", include_deleted=int(include_deleted))["schedules"]

    def calendars(self) -> list[dict[str, Any]]:
        """Every calendar, deleted ones too, with the ``agentid`` of the app that created it."""
        return self._call("GET", "calendars")["calendars"]

    def allow_schedules(self, allowed: bool) -> None:
        """Whether the app may call oa/calendar/* and oa/schedule/* (else 48002 "api forbidden"), as the
        admin console's 日程 → 可调用接口的应用 decides. ``reset()`` restores the configured value."""
        self._call("POST", "schedule_permission", {"allowed": allowed})

    def respond_to_schedule(self, schedule_id: str, userid: str, response_status: int) -> dict[str, Any]:
        """Attendee ``userid`` answers in their calendar: 1 accepted, 2 tentative, 3 declined (0 none).
        Returns {"ok": True, "schedule": ...} or {"error": ...}."""
        return self._call("POST", "schedule_response", {"schedule_id": schedule_id, "userid": userid,
                                                         "response_status": response_status})  # fmt: skip

    def set_robot(self, key: str, disabled: bool) -> None:
        self._call("POST", "robots", {"key": key, "disabled": disabled})

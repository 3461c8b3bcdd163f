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
        """Inject a fault: kind errcode (errcode=...), http502, truncated, reset or latency."""
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

    def set_robot(self, key: str, disabled: bool) -> None:
        self._call("POST", "robots", {"key": key, "disabled": disabled})

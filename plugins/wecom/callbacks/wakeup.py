"""The receiver's wake-up: one Redis pub/sub message after events are stored, so the events DAG starts at once.

Only a signal. The inbox table is the record and the events DAG also sweeps it every minute, so a lost
wake-up (Redis down, no watcher subscribed at that instant) delays the directory by at most a minute and
never loses an event. Publishing happens off the request path, in one background thread, and a burst of
stored events becomes one or two messages.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow.providers.redis.hooks.redis import RedisHook

from wecom.assets import WAKEUP_CHANNEL

log = logging.getLogger(__name__)

TIMEOUT = 2.0  # seconds for connecting to Redis and for one publish
WARN_EVERY = 300.0  # seconds between two warnings about the same failing Redis


class Wakeup:
    """Publishes to ``WAKEUP_CHANNEL`` through the Redis connection ``redis_conn_id`` (None: no wake-up)."""

    def __init__(self, redis_conn_id: str | None) -> None:
        self.redis_conn_id = redis_conn_id
        self._lock = threading.Lock()
        self._pending = False
        self._client: Any = None
        self._warned_at = float("-inf")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wecom-wakeup")

    def signal(self) -> None:
        """Ask for a publish. Signals while one is waiting to go out ride on it; one that arrives while
        a publish is under way gets its own, so no stored event is left without a wake-up after it."""
        if not self.redis_conn_id:
            return
        with self._lock:
            if self._pending:
                return
            self._pending = True
        self._executor.submit(self._publish)

    def _publish(self) -> None:
        with self._lock:
            self._pending = False
        try:
            self._redis().publish(WAKEUP_CHANNEL, "stored")
        except Exception as exc:  # noqa: BLE001 - a signal: the sweep covers whatever it failed to say
            self._client = None
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY:
                self._warned_at = now
                log.warning(
                    "Could not publish the callback wake-up through Redis connection %r (%s); the events "
                    "DAG's every-minute sweep picks the events up instead. Check that Redis answers.",
                    self.redis_conn_id, type(exc).__name__,
                )  # fmt: skip

    def _redis(self) -> Any:
        if self._client is None:
            client = RedisHook(redis_conn_id=self.redis_conn_id).get_conn()
            # The hook sets no timeouts: a Redis that does not answer must not hold the thread for minutes.
            client.connection_pool.connection_kwargs.update(
                socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
            )
            self._client = client
        return self._client

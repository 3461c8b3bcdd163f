"""Where access tokens live between calls, tasks and processes.

WeCom blocks callers who fetch tokens too often, and every Airflow task is its own process, so the
default store is a table in the warehouse shared by all of them. A refresh is single-flight: a
transaction-scoped advisory lock, then a re-check, so N cold processes make one ``gettoken`` call.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from wecom import sql

# (token, expires_in seconds) as gettoken returned them.
Fetch = Callable[[], tuple[str, int]]
CACHE = "token_cache.sql"  # the cache's named statements (token_store.sql creates its table)


@dataclass(frozen=True)
class CachedToken:
    value: str
    expires_at: float  # unix time

    def fresh(self, margin: float, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) < self.expires_at - margin


def cache_key(corp_id: str, secret: str) -> str:
    """Per (corp, app secret): several apps of one corp have several tokens. Never the secret itself."""
    fingerprint = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return f"{corp_id}:{fingerprint}"


class TokenStore(Protocol):
    def get(self, key: str, fetch: Fetch, margin: float) -> CachedToken:
        """Return a token fresh for at least ``margin`` seconds, calling ``fetch`` at most once."""

    def invalidate(self, key: str, token: str) -> None:
        """Forget ``token`` only if it is still the cached one (another process may have refreshed)."""


class MemoryTokenStore:
    """One process only: for code that runs without a database."""

    def __init__(self) -> None:
        self._tokens: dict[str, CachedToken] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: str, fetch: Fetch, margin: float) -> CachedToken:
        cached = self._tokens.get(key)
        if cached and cached.fresh(margin):
            return cached
        with self._lock(key):
            cached = self._tokens.get(key)
            if cached and cached.fresh(margin):
                return cached
            value, expires_in = fetch()
            cached = CachedToken(value, time.time() + expires_in)
            self._tokens[key] = cached
            return cached

    def invalidate(self, key: str, token: str) -> None:
        with self._lock(key):
            cached = self._tokens.get(key)
            if cached and cached.value == token:
                del self._tokens[key]


class PostgresTokenStore:
    """Shared by every process that reaches the warehouse; the table is created on first use."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._conn: Any = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._table_ready = False

    def _connection(self) -> Any:
        if self._pid != os.getpid():  # forked: never touch the parent's socket
            self._conn, self._pid, self._table_ready = None, os.getpid(), False
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
            self._conn.autocommit = True
        return self._conn

    def _ensure_table(self, conn: Any) -> None:
        if self._table_ready:
            return
        with conn.transaction():
            conn.execute(sql.statement(CACHE, "ddl_lock"))
            conn.execute(sql.load("token_store.sql"))
        self._table_ready = True

    def _read(self, conn: Any, key: str, margin: float) -> CachedToken | None:
        row = conn.execute(sql.statement(CACHE, "read"), (key, margin)).fetchone()
        return CachedToken(row[0], row[1]) if row else None

    def get(self, key: str, fetch: Fetch, margin: float) -> CachedToken:
        with self._lock:
            try:
                return self._get(key, fetch, margin)
            except Exception:
                self._discard()
                raise

    def _get(self, key: str, fetch: Fetch, margin: float) -> CachedToken:
        conn = self._connection()
        self._ensure_table(conn)
        cached = self._read(conn, key, margin)
        if cached:
            return cached
        with conn.transaction():
            conn.execute(sql.statement(CACHE, "key_lock"), (key,))
            cached = self._read(conn, key, margin)
            if cached:
                return cached
            value, expires_in = fetch()
            row = conn.execute(sql.statement(CACHE, "store"), (key, value, expires_in)).fetchone()
            return CachedToken(value, row[0])

    def invalidate(self, key: str, token: str) -> None:
        with self._lock:
            try:
                conn = self._connection()
                self._ensure_table(conn)
                conn.execute(sql.statement(CACHE, "invalidate"), (key, token))
            except Exception:
                self._discard()
                raise

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass


_memory_store = MemoryTokenStore()
_postgres_stores: dict[str, PostgresTokenStore] = {}
_stores_guard = threading.Lock()


def memory_store() -> MemoryTokenStore:
    """The process-wide in-memory store, shared by every hook in this process."""
    return _memory_store


def postgres_store(conn_id: str) -> PostgresTokenStore:
    """The process-wide store for one warehouse connection (one DB session per process)."""
    with _stores_guard:
        store = _postgres_stores.get(conn_id)
        if store is None:
            from wecom.warehouse import connect

            store = PostgresTokenStore(lambda: connect(conn_id))
            _postgres_stores[conn_id] = store
        return store

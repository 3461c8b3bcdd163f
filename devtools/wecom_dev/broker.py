"""A Redis for tests: the machine's own on 6379 when it answers, else a private ``redis-server`` of ours."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from wecom_dev.processes import free_port

DEFAULT = ("127.0.0.1", 6379)


def redis_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def redis_server_command(port: int) -> list[str]:
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


@contextmanager
def running_redis() -> Iterator[str]:
    """``redis://host:port/0`` of a Redis that answers; a private server started here is stopped after."""
    if redis_answers(*DEFAULT):
        yield f"redis://{DEFAULT[0]}:{DEFAULT[1]}/0"
        return
    if shutil.which("redis-server") is None:
        raise RuntimeError("No Redis answers on 127.0.0.1:6379 and redis-server is not installed")
    port = free_port()
    server = subprocess.Popen(
        redis_server_command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        while not redis_answers("127.0.0.1", port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {port} did not come up")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)

"""Find a PostgreSQL server for tests, benchmarks and the demo, or start a private one.

Order: the URL in ``WECOM_TEST_DATABASE_URL``; else the server on 127.0.0.1:5432 when it answers
(``WECOM_LOCAL_DATABASE_URL`` names another); else a cluster already running in the given folder; else a
cluster started from the machine's PostgreSQL binaries (as a non-root user when run as root, since
PostgreSQL refuses to run as root), in that folder or a throwaway one.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from wecom_dev.processes import free_port

URL_ENV = "WECOM_TEST_DATABASE_URL"
LOCAL_URL_ENV = "WECOM_LOCAL_DATABASE_URL"
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class Server:
    """A server we may create databases on; ``stop`` is a no-op unless we started it."""

    url: str  # points at a maintenance database
    data_dir: Path | None = None
    run_as: str | None = None
    bin_dir: Path | None = None
    throwaway: bool = False  # a private cluster in a temporary folder, removed on stop
    started_here: bool = False  # this process started it (else it was running already)

    def stop(self) -> None:
        if self.data_dir is None or self.bin_dir is None:
            return
        pg_ctl = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-t", "30"]
        try:
            _run([*pg_ctl, "-m", "fast", "stop"], self.run_as)
        except RuntimeError:  # a client that will not let go: stop without waiting for it
            _run([*pg_ctl, "-m", "immediate", "stop"], self.run_as)
        if self.throwaway:
            shutil.rmtree(self.data_dir.parent, ignore_errors=True)

    def database_url(self, name: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def create_database(self, prefix: str = "wecom_test") -> str:
        """A new empty database; returns its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def answers(url: str, timeout: float = 3.0) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=timeout) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def find_server(data_dir: Path | None = None) -> Server:
    """A usable server, starting a private one if nothing answers (in ``data_dir`` if given)."""
    given = os.environ.get(URL_ENV)
    if given:
        if not answers(given):
            raise RuntimeError(f"{URL_ENV}={_safe(given)} does not answer: start it or unset the variable")
        return Server(url=given)
    local = os.environ.get(LOCAL_URL_ENV, LOCAL_URL)
    if answers(local):
        return Server(url=local)
    running = running_cluster(data_dir) if data_dir else None
    return running or start_private_cluster(data_dir)


def running_cluster(base: Path) -> Server | None:
    """The private cluster in ``base`` when it is running already (a demo left it up)."""
    pid_file = Path(base) / "data" / "postmaster.pid"
    try:
        port = int(pid_file.read_text().splitlines()[3])
    except (OSError, IndexError, ValueError):
        return None
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    if not answers(url, timeout=1):
        return None
    run_as = _owner(pid_file)
    return Server(url=url, data_dir=pid_file.parent, run_as=run_as, bin_dir=_bin_dir())


def _owner(path: Path) -> str | None:
    owner = pwd.getpwuid(path.stat().st_uid).pw_name
    return owner if os.geteuid() == 0 and owner != "root" else None


def _bin_dir() -> Path:
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if out:
            candidates.append(Path(out))
    candidates += sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    raise RuntimeError(
        "no PostgreSQL server answers and no server binaries were found: install PostgreSQL "
        f"(e.g. apt-get install postgresql) or set {URL_ENV}"
    )


def _run(cmd: list[str], user: str | None) -> None:
    """Run a server command in its own session: a terminal's Ctrl-C meant for us never reaches the server,
    which is stopped in order, after its clients."""
    if user:  # root's PATH may lack the sbin folders
        runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin") or "runuser"
        cmd = [runuser, "-u", user, "--", *cmd]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, start_new_session=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.strip() or result.stdout.strip()}")


def start_private_cluster(data_dir: Path | None = None) -> Server:
    bin_dir = _bin_dir()
    run_as = None
    if os.geteuid() == 0:
        run_as = next((u for u in ("postgres", "nobody") if _user_exists(u)), None)
        if run_as is None:
            raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")
    base = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="wecom-pg-"))
    base.mkdir(parents=True, exist_ok=True)
    pgdata = base / "data"
    port = free_port()
    if run_as:
        info = pwd.getpwnam(run_as)
        os.chown(base, info.pw_uid, info.pw_gid)
        base.chmod(0o755)
    if not (pgdata / "PG_VERSION").exists():
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
            run_as,
        )
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    _run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(pgdata),
            "-o",
            options,
            "-l",
            str(base / "server.log"),
            "-w",
            "start",
        ],
        run_as,
    )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + 30
    while not answers(url, timeout=1):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the private PostgreSQL did not start: see {base / 'server.log'}")
        time.sleep(0.2)
    return Server(
        url=url,
        data_dir=pgdata,
        run_as=run_as,
        bin_dir=bin_dir,
        throwaway=data_dir is None,
        started_here=True,
    )


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _safe(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url

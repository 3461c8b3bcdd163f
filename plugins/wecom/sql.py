"""SQL lives in ``include/sql/``; this finds it from a checkout, an editable install or an image."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path


def sql_dir() -> Path:
    """``WECOM_SQL_DIR`` when set (images), else ``include/sql`` next to ``plugins/`` in the project."""
    configured = os.environ.get("WECOM_SQL_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "include" / "sql"


@cache
def load(name: str) -> str:
    """The text of one SQL file, e.g. ``load("token_store.sql")``."""
    path = sql_dir() / name
    if not path.is_file():
        raise FileNotFoundError(
            f"SQL file {path} is missing: set WECOM_SQL_DIR to the project's include/sql folder"
        )
    return path.read_text(encoding="utf-8")


@cache
def statements(name: str) -> dict[str, str]:
    """Named statements of one file, each introduced by a line ``-- name: <statement name>``."""
    named: dict[str, str] = {}
    current: str | None = None
    for line in load(name).splitlines():
        if line.startswith("-- name:"):
            current = line.split(":", 1)[1].strip()
            named[current] = ""
        elif current is not None:
            named[current] += line + "\n"
    return {key: text.strip().rstrip(";") for key, text in named.items()}

"""Named SQL statements from ``include/sql/`` (see ``wecom.files`` for where that is)."""

from __future__ import annotations

from functools import cache

from wecom.files import SQL


@cache
def load(name: str) -> str:
    """The text of one SQL file, e.g. ``load("token_store.sql")``."""
    path = SQL / name
    if not path.is_file():
        raise FileNotFoundError(f"SQL file {path} is missing from the installed wecom package: reinstall it")
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


def statement(file: str, name: str) -> str:
    """One named statement of ``file``; a name the file lacks says which file and which name."""
    named = statements(file)
    if name not in named:
        raise KeyError(
            f"no statement '-- name: {name}' in {file}: the installed SQL files do not match the code"
        )
    return named[name]

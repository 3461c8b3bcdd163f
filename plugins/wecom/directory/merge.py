"""The history-keeping merge of one staged snapshot into the directory tables (include/sql/directory/merge.sql).

A snapshot staged whole speaks for the whole directory: what it lacks is removed. A scoped one (the ids
callback events named, or a full sync's changes) removes and closes only inside its scope; the statements
that do have a ``<name>_scoped`` form for it in merge.sql.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from wecom import sql
from wecom.errors import PipelineStateError

MERGE = "directory/merge.sql"
# Each statement's row count is the figure recorded in sync_runs under the name beside it; the two
# updates return a flag per row (restored, else changed) and feed two figures. History is closed before
# a table changes; removals run before inserts, since new rows are in the snapshot by definition. No
# statement reads a table another one has just filled, so none needs fresh statistics mid-merge.
APPLY_ORDER = (
    ("close_departments_history", None),
    ("update_departments", ("departments_restored", "departments_changed")),
    ("remove_departments", "departments_removed"),
    ("insert_departments", "departments_added"),
    ("close_users_history", None),
    ("update_users", ("users_restored", "users_changed")),
    ("remove_users", "users_removed"),
    ("insert_users", "users_added"),
    ("close_memberships_history", None),
    ("remove_memberships", "memberships_removed"),
    ("update_memberships", "memberships_changed"),
    ("insert_memberships", "memberships_added"),
)


class MassRemovalBlocked(PipelineStateError):
    """The snapshot would remove too many members at once; nothing was applied."""


@dataclass(frozen=True)
class RemovalGuard:
    max_share: float = 0.10
    allow_mass_removal: bool = False

    def check(self, removed: int, active: int) -> None:
        if self.allow_mass_removal or active == 0 or removed / active <= self.max_share:
            return
        raise MassRemovalBlocked(
            f"this sync would remove {removed} of {active} active members ({removed / active:.1%}), more than "
            f"the {self.max_share:.0%} guard; nothing was applied. If WeCom really lost them (check the app's "
            f"visible range first), trigger the DAG with the param allow_mass_removal: true"
        )


@functools.cache
def merge_statements(scoped: bool) -> dict[str, str]:
    """merge.sql's statements under the names ``merge`` runs: for a scoped snapshot, each statement's
    ``<name>_scoped`` form where it has one (a plain semi-join on the scope, so the plan starts from the
    few ids in scope); for a snapshot staged whole, the plain ``<name>``."""
    statements = sql.statements(MERGE)
    if not scoped:
        return statements
    return {name: statements.get(f"{name}_scoped", text) for name, text in statements.items()}


def analyze_staging(conn: Any, scoped: bool) -> None:
    """Fresh statistics for fresh staging (and, for a scoped merge, for directory tables filled since
    autovacuum last came by), so the merge's joins are planned for their sizes. A first sync has nothing
    to join against: every plan is a scan of staging, whatever the statistics say."""
    statements = sql.statements(MERGE)
    if not conn.execute(statements["directory_filled"]).fetchone()[0]:
        return
    conn.execute(statements["analyze_staging"])
    if scoped:  # it starts from the few ids in scope: only with real sizes is that the plan
        conn.execute(statements["analyze_scope"])
        for (table,) in conn.execute(statements["stale_statistics"]).fetchall():
            conn.execute(statements[f"analyze_{table}"])


def merge(conn: Any, params: dict[str, Any], guard: RemovalGuard) -> dict[str, Any]:
    """The history-keeping merge of one staged snapshot, inside the caller's transaction; returns counts.

    ``params``: ``snapshot_id``, ``sync_run_id`` and ``partial`` (the snapshot is scoped)."""
    statements = merge_statements(bool(params["partial"]))
    with conn.cursor() as cur:
        cur.execute(statements["fetched"], params)
        result = dict(zip([c.name for c in cur.description], cur.fetchone(), strict=True))
        cur.execute(statements["removal_check"], params)
        active, removed = cur.fetchone()
    guard.check(removed, active)
    written = 0
    for name, figure in APPLY_ORDER:
        cursor = conn.execute(statements[name], params)
        count = cursor.rowcount
        written += count
        if isinstance(figure, tuple):
            restored = sum(1 for (restoring,) in cursor.fetchall() if restoring)
            result[figure[0]], result[figure[1]] = restored, count - restored
        elif figure:
            result[figure] = count
    result["rows_written"] = written
    return result

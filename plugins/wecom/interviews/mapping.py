"""Who is who: platform users to WeCom userids (manual overrides win; email, then mobile; never names)."""

from __future__ import annotations

import logging
from typing import Any

from wecom import sql

log = logging.getLogger(__name__)
QUERIES = "interview/queries.sql"
MAPPING = "interview/mapping.sql"


def refresh_mapping(source: Any, warehouse: Any) -> dict[str, int]:
    """Recompute wecom.user_mapping from the platform's users; returns counts per match kind."""
    users = source.execute(sql.statements(QUERIES)["platform_users"]).fetchall()
    statements = sql.statements(MAPPING)
    with warehouse.transaction():
        warehouse.execute(statements["lock"])  # reminder runs and digests refresh at once: one at a time
        warehouse.execute(statements["create_stage"])
        with (
            warehouse.cursor() as cur,
            cur.copy(statements["copy_stage"]) as copy,
        ):
            for row in users:
                copy.write_row(row)
        warehouse.execute(statements["upsert"])
        warehouse.execute(statements["drop_gone"])
        warehouse.execute(statements["forget_mapped"])
        summary = dict(warehouse.execute(statements["summary"]).fetchall())
    log.info("User mapping refreshed: %s", summary)
    return summary


def lookup(warehouse: Any, platform_user_ids: list[int]) -> dict[int, tuple[str | None, str]]:
    """platform user id -> (lowercased WeCom userid or None, platform name)."""
    rows = warehouse.execute(sql.statements(MAPPING)["lookup"], {"ids": sorted(set(platform_user_ids))})
    return {pid: (userid, name) for pid, userid, name in rows}


def report_unmapped(warehouse: Any, ids: set[int], mapping: dict[int, tuple[str | None, str]]) -> list[str]:
    """Names (and ids) of interviewers who cannot be messaged, for the run's result. The log warns only
    about those no earlier run warned about: the same list every ten minutes would be noise."""
    missing = sorted(i for i in ids if mapping.get(i, (None, ""))[0] is None)
    names = {i: f"{mapping.get(i, (None, '?'))[1]} (platform user {i})" for i in missing}
    if not missing:
        return []
    rows = warehouse.execute(sql.statements(MAPPING)["newly_unmapped"], {"ids": missing}).fetchall()
    new = sorted(names[i] for (i,) in rows)
    if new:
        log.warning(
            "%d new interviewer(s) without a WeCom mapping get nothing: %s. %d in all: SELECT * FROM "
            "wecom.unmapped_interviewers; map someone with a row in wecom.user_mapping_overrides.",
            len(new),
            ", ".join(new),
            len(missing),
        )
    else:
        log.info(
            "%d interviewer(s) without a WeCom mapping, none new (wecom.unmapped_interviewers)", len(missing)
        )
    return list(names.values())

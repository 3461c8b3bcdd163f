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
            cur.copy("COPY platform_users_stage (platform_user_id, name, email, mobile) FROM STDIN") as copy,
        ):
            for row in users:
                copy.write_row(row)
        warehouse.execute(statements["upsert"])
        warehouse.execute(statements["drop_gone"])
        summary = dict(warehouse.execute(statements["summary"]).fetchall())
    log.info("User mapping refreshed: %s", summary)
    return summary


def lookup(warehouse: Any, platform_user_ids: list[int]) -> dict[int, tuple[str | None, str]]:
    """platform user id -> (lowercased WeCom userid or None, platform name)."""
    rows = warehouse.execute(sql.statements(MAPPING)["lookup"], {"ids": sorted(set(platform_user_ids))})
    return {pid: (userid, name) for pid, userid, name in rows}


def report_unmapped(ids: set[int], mapping: dict[int, tuple[str | None, str]]) -> list[str]:
    """Names (and ids) of interviewers who cannot be messaged, for the log and the run's summary."""
    missing = sorted(i for i in ids if mapping.get(i, (None, ""))[0] is None)
    names = [f"{mapping.get(i, (None, '?'))[1]} (platform user {i})" for i in missing]
    if names:
        log.warning(
            "%d interviewer(s) have no WeCom mapping and get nothing: %s. See wecom.unmapped_interviewers "
            "and add rows to wecom.user_mapping_overrides.",
            len(names),
            ", ".join(names),
        )
    return names

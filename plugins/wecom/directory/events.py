"""Apply WeCom's contact-change callbacks: re-read exactly the members and departments the waiting events
name, and merge them through the same history-keeping merge as the full sync.

Events carry ids only (WeCom's rule since 2022-08-15), may repeat and may arrive out of order, so an event
is a pointer, never data: the result is WeCom's current state for each id it names, whatever the events
said. An id WeCom no longer knows is a removal. The events are marked processed in the merge's own
transaction, so a crash leaves them waiting, and a re-run re-reads the same ids.
"""

from __future__ import annotations

import logging
from typing import Any

from wecom import sql
from wecom.directory.apply import apply_snapshot
from wecom.directory.merge import RemovalGuard
from wecom.directory.snapshot import Snapshot, add_member, normalize_department, normalize_member
from wecom.directory.staging import stage_snapshot
from wecom.directory.state import Scope
from wecom.hooks import WeComHook

log = logging.getLogger(__name__)

EVENTS = "callbacks/events.sql"
MEMBER_CHANGES = {"create_user", "update_user", "delete_user"}
DEPARTMENT_CHANGES = {"create_party", "update_party", "delete_party"}


def waiting(conn: Any, limit: int) -> list[dict[str, Any]]:
    """The contact events not yet applied, oldest first."""
    with conn.cursor() as cur:
        cur.execute(sql.statements(EVENTS)["waiting"], {"limit": limit})
        names = [c.name for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def named(events: list[dict[str, Any]]) -> Scope:
    """The members and departments the events name; a userid change names both spellings."""
    userids: set[str] = set()
    departments: set[int] = set()
    for event in events:
        if event["change_type"] in MEMBER_CHANGES:
            userids.update(u.lower() for u in (event["userid"], event["new_userid"]) if u)
        elif event["change_type"] in DEPARTMENT_CHANGES and event["department_id"] is not None:
            departments.add(int(event["department_id"]))
    return Scope(frozenset(userids), frozenset(departments))


def reread(hook: WeComHook, scope: Scope) -> Snapshot:
    """WeCom's current state for each id in scope; ids it no longer knows are simply absent (removed)."""
    snapshot = Snapshot()
    for department_id in sorted(scope.department_ids):
        raw = hook.get_department(department_id)
        if raw is not None:
            department = normalize_department(raw)
            snapshot.departments[department[0]] = department
    for userid in sorted(scope.userids):
        raw = hook.get_member(userid)
        if raw is not None:
            # normalize_member adds the department it was "listed in" when the member's own list lacks it:
            # name one from that list, so a re-read never invents a membership.
            departments = raw.get("department") if isinstance(raw.get("department"), list) else []
            listed_in = departments[0] if departments and isinstance(departments[0], int) else 1
            add_member(snapshot, normalize_member(raw, listed_in))
    return snapshot


def led_departments(conn: Any, userids: frozenset[str]) -> dict[str, set[int]]:
    """The departments the directory now lists each member as leading (``wecom.departments.leaders``)."""
    led: dict[str, set[int]] = {}
    rows = conn.execute(sql.statements(EVENTS)["led_departments"], {"userids": sorted(userids)})
    for userid, department_id in rows:
        led.setdefault(userid, set()).add(department_id)
    return led


def settle_leaders(hook: WeComHook, snapshot: Snapshot, scope: Scope, led: dict[str, set[int]]) -> Scope:
    """Re-read the departments whose leaders a member event changed, and widen the scope to them.

    WeCom announces a change of a department's leaders only as ``update_user`` (the member's
    ``is_leader_in_dept``) and a leader's departure only as ``delete_user``: the department's own row
    (``department_leader``) changes without an event naming it. Whatever a re-read member now leads or no
    longer leads, compared with what the directory lists, is re-read too; nothing else costs a call."""
    leads_now: dict[str, set[int]] = {}
    for (userid, department_id), (_, is_leader) in snapshot.memberships.items():
        if is_leader:
            leads_now.setdefault(userid.lower(), set()).add(department_id)
    unsettled = set()
    for userid in scope.userids:
        unsettled |= led.get(userid, set()) ^ leads_now.get(userid, set())
    unsettled -= scope.department_ids
    for department_id in sorted(unsettled):
        raw = hook.get_department(department_id)
        if raw is not None:
            department = normalize_department(raw)
            snapshot.departments[department[0]] = department
    return Scope(scope.userids, scope.department_ids | frozenset(unsettled))


def apply_events(
    hook: WeComHook, conn: Any, guard: RemovalGuard, dag_run_id: str | None = None, limit: int = 5000
) -> dict[str, Any]:
    """One incremental sync of what the waiting events name; the counts recorded in sync_runs."""
    events = waiting(conn, limit)
    if not events:
        return {"events_applied": 0}
    scope = named(events)
    snapshot = reread(hook, scope)
    led = led_departments(conn, scope.userids)
    scope = settle_leaders(hook, snapshot, scope, led)
    snapshot_id = stage_snapshot(conn, snapshot, dag_run_id, scope=scope)
    result = apply_snapshot(
        conn, snapshot_id, guard, dag_run_id, kind="incremental", events=[e["event_id"] for e in events]
    )
    log.info(
        "Applied %d contact event(s) naming %d member(s) and %d department(s): %s",
        len(events),
        len(scope.userids),
        len(scope.department_ids),
        {k: v for k, v in result.items() if v},
    )
    return {**result, "events_applied": len(events)}

"""Fetch a complete, validated snapshot of the WeCom directory, or fail without one.

A snapshot is all or nothing: one department that cannot be listed after the hook's retries fails
the whole fetch, so a partial directory can never be applied (and never soft-delete anyone).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from wecom.errors import WeComDataError
from wecom.hooks import WeComHook

log = logging.getLogger(__name__)

USER_COLUMNS = (
    "userid", "name", "english_name", "alias", "position", "status", "main_department", "direct_leader",
    "telephone", "extattr", "mobile", "gender", "email", "biz_mail", "avatar", "thumb_avatar", "qr_code",
    "address", "extra",
)  # fmt: skip
DEPARTMENT_COLUMNS = ("department_id", "name", "name_en", "parent_id", "sort_order", "leaders")
MEMBERSHIP_COLUMNS = ("userid", "department_id", "sort_order", "is_leader")

_TEXT_FIELDS = (
    "english_name",
    "alias",
    "position",
    "telephone",
    "mobile",
    "email",
    "biz_mail",
    "avatar",
    "thumb_avatar",
    "qr_code",
    "address",
)
_KNOWN_USER_FIELDS = set(USER_COLUMNS) | {"department", "order", "is_leader_in_dept", "gender"}
_USERID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MAX_TEXT_BYTES = 4096


class DirectoryDataError(WeComDataError):
    """WeCom returned directory data we cannot load; the message says which item and why."""


@dataclass
class Snapshot:
    departments: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # key: lowercased userid
    memberships: dict[tuple[str, int], tuple[int, bool]] = field(default_factory=dict)
    # key: lowercased userid; a digest of the member's row and memberships, for the next full sync to
    # tell what changed (``wecom.directory.state.row_state``).
    member_digests: dict[str, bytes] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "departments": len(self.departments),
            "users": len(self.users),
            "memberships": len(self.memberships),
        }


def _text(value: Any, what: str, *, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise DirectoryDataError(f"{what} is missing")
        return None
    if not isinstance(value, str):
        raise DirectoryDataError(f"{what} must be a string, got {type(value).__name__}")
    value = value.replace("\x00", "")  # PostgreSQL text cannot hold NUL
    if len(value.encode("utf-8")) > MAX_TEXT_BYTES:
        raise DirectoryDataError(f"{what} is longer than {MAX_TEXT_BYTES} bytes")
    return value


def _int(
    value: Any, what: str, *, default: int | None = None, low: int = -(2**63), high: int = 2**63 - 1
) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        else:
            raise DirectoryDataError(f"{what} must be an integer, got {value!r:.40}")
    if not low <= value <= high:
        raise DirectoryDataError(f"{what} is out of range: {value}")
    return value


def _userids(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DirectoryDataError(f"{what} must be a list of userids")
    return [_userid(item, what) for item in value]


def _userid(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _USERID.match(value):
        raise DirectoryDataError(f"{what}: {value!r:.80} is not a valid userid (1-64 of A-Z a-z 0-9 _ . @ -)")
    return value


def normalize_department(raw: Any) -> tuple[Any, ...]:
    if not isinstance(raw, dict):
        raise DirectoryDataError(f"department/list returned a non-object item: {raw!r:.80}")
    dept_id = _int(raw.get("id"), "department id", low=1, high=2**32 - 1)
    where = f"department {dept_id}"
    return (
        dept_id,
        _text(raw.get("name"), f"{where} name", required=True),
        _text(raw.get("name_en"), f"{where} name_en"),
        _int(raw.get("parentid"), f"{where} parentid", default=0, low=0, high=2**32 - 1),
        _int(raw.get("order"), f"{where} order", default=0, low=0, high=2**63 - 1),
        _userids(raw.get("department_leader"), f"{where} department_leader"),
    )


def check_tree(departments: dict[int, tuple[Any, ...]]) -> None:
    """Reject cycles (a department that is its own ancestor); orphans are allowed (partial visibility)."""
    for start in departments:
        seen, current = {start}, departments[start][3]
        while current in departments:
            if current in seen:
                raise DirectoryDataError(f"department {start} is in a parent cycle: {sorted(seen)}")
            seen.add(current)
            current = departments[current][3]


def _aligned(raw: dict[str, Any], name: str, size: int, where: str) -> list[int]:
    values = raw.get(name)
    if not isinstance(values, list):
        return [0] * size
    values = [_int(v, f"{where} {name}", default=0) for v in values]
    return (values + [0] * size)[:size]


def normalize_member(raw: Any, listed_in: int) -> tuple[dict[str, Any], list[tuple[int, int, bool]]]:
    """Validate one user/list item: the member's row, and its (department, order, leader) memberships."""
    if not isinstance(raw, dict):
        raise DirectoryDataError(f"user/list for department {listed_in} returned a non-object item")
    userid = _userid(raw.get("userid"), f"user/list for department {listed_in}")
    where = f"member {userid}"
    departments = raw.get("department")
    if departments is None:
        departments = [listed_in]
    if not isinstance(departments, list):
        raise DirectoryDataError(f"{where} department must be a list")
    departments = [_int(d, f"{where} department", low=1, high=2**32 - 1) for d in departments]
    orders = _aligned(raw, "order", len(departments), where)
    leaders = _aligned(raw, "is_leader_in_dept", len(departments), where)
    memberships = [(d, o, bool(flag)) for d, o, flag in zip(departments, orders, leaders, strict=True)]
    if listed_in not in departments:  # listed there, though its own list forgot it
        memberships.append((listed_in, 0, False))
    gender = raw.get("gender")
    extra = {k: v for k, v in raw.items() if k not in _KNOWN_USER_FIELDS}
    extattr = raw.get("extattr")
    user = {
        "userid": userid,
        "name": _text(raw.get("name"), f"{where} name", required=True),
        "status": _int(raw.get("status"), f"{where} status", default=1, low=0, high=32767),
        "main_department": _int(raw.get("main_department"), f"{where} main_department", default=0)
        or (departments[0] if departments else None),
        "direct_leader": _userids(raw.get("direct_leader"), f"{where} direct_leader"),
        "gender": None if gender in (None, "") else _text(str(gender), f"{where} gender"),
        "extattr": json.dumps(extattr, ensure_ascii=False) if extattr is not None else None,
        "extra": json.dumps(extra, ensure_ascii=False, default=str) if extra else "{}",
    }
    for name in _TEXT_FIELDS:
        user[name] = _text(raw.get(name), f"{where} {name}")
    return user, memberships


Member = tuple[dict[str, Any], list[tuple[int, int, bool]]]


def member_digest(member: Member) -> bytes:
    """8 bytes that change whenever the member's row or memberships do."""
    return hashlib.blake2b(repr(member).encode(), digest_size=8).digest()


def add_member(snapshot: Snapshot, member: Member, digest: bytes | None = None) -> None:
    """Merge a normalized member: one row per userid case-insensitively, memberships united. Listed
    twice with different data (a change mid-fetch, or spellings of one userid), its digest is made one
    that matches nothing, so the next full sync re-merges it rather than trust either listing."""
    user, memberships = member
    key = user["userid"].lower()
    digest = digest or member_digest(member)
    existing = snapshot.users.setdefault(key, user)
    if snapshot.member_digests.setdefault(key, digest) != digest:
        snapshot.member_digests[key] = os.urandom(8)
    for dept_id, order, leader in memberships:
        membership = (existing["userid"], dept_id)
        if membership not in snapshot.memberships or order or leader:
            snapshot.memberships[membership] = (order, leader)


def _list_and_normalize(hook: WeComHook, dept_id: int) -> list[tuple[Member, bytes]]:
    """Runs in a worker thread, so validation and digests overlap with waiting on other calls."""
    members = [normalize_member(raw, dept_id) for raw in hook.list_department_members(dept_id)]
    return [(member, member_digest(member)) for member in members]


def fetch_snapshot(hook: WeComHook, concurrency: int = 4) -> Snapshot:
    """department/list once, then user/list per department with bounded concurrency."""
    if not 1 <= concurrency <= 32:
        raise WeComDataError(f"concurrency must be between 1 and 32, not {concurrency}")
    raw_departments = hook.list_departments()
    snapshot = Snapshot()
    for raw in raw_departments:
        dept = normalize_department(raw)
        if dept[0] in snapshot.departments:
            raise DirectoryDataError(f"department/list returned department {dept[0]} twice")
        snapshot.departments[dept[0]] = dept
    if not snapshot.departments:
        raise DirectoryDataError("department/list returned no departments: check the app's visible range")
    check_tree(snapshot.departments)
    ids = sorted(snapshot.departments)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="wecom-user-list") as pool:
        futures = {pool.submit(_list_and_normalize, hook, dept_id): dept_id for dept_id in ids}
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        failed = [f for f in done if f.exception() is not None]
        if failed:
            error = failed[0].exception()
            log.error(
                "Department %s could not be listed: the snapshot is incomplete, nothing is applied",
                futures[failed[0]],
            )
            raise error
    for future, _ in sorted(futures.items(), key=lambda item: item[1]):  # department order: deterministic
        for member, digest in future.result():
            add_member(snapshot, member, digest)
    log.info("Fetched a complete snapshot: %s", snapshot.counts())
    return snapshot

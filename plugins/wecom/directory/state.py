"""Row state: what a complete snapshot sums up to, and what changed since the last one applied.

Each department and each member (with its memberships) has an 8-byte digest; the snapshot's digest is
theirs in key order. The last applied complete snapshot's digests are kept in wecom_staging.applied_state,
so the next full sync can stage only the members and departments that differ (a ``Scope``).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

from wecom import sql
from wecom.directory.snapshot import Snapshot

STATE = "directory/state.sql"
# Versions the row digests: a loader that sums rows up differently never matches an old digest.
DIGEST_VERSION = b"wecom-directory-v4"
# A full sync that changes more than this share of rows stages everything: a scoped merge would not pay.
MAX_CHANGED_SHARE = 0.2


@dataclass(frozen=True)
class Scope:
    """What a partial snapshot speaks for: these members (lowercased userids) and departments, re-read
    from WeCom; everything else in the directory is left as it is."""

    userids: frozenset[str] = frozenset()
    department_ids: frozenset[int] = frozenset()


def row_state(snapshot: Snapshot) -> dict[str, bytes]:
    """An 8-byte digest of each department (key ``d<id>``) and of each member with its memberships
    (``u<lowercased userid>``, taken while fetching), in key order: what the next full sync compares
    with. Memberships count as their member's: a scoped merge's scope is members, not memberships."""
    blake2b = hashlib.blake2b
    state = {
        f"d{key}": blake2b(repr(snapshot.departments[key]).encode(), digest_size=8).digest()
        for key in sorted(snapshot.departments)
    }
    digests = snapshot.member_digests
    # A member added without a digest is unknown: a fresh random one makes it count as changed.
    state.update(("u" + key, digests.get(key) or os.urandom(8)) for key in sorted(snapshot.users))
    return state


def state_digest(state: dict[str, bytes]) -> str:
    """The snapshot's fingerprint: its rows' digests, in key order."""
    digest = hashlib.sha256(DIGEST_VERSION)
    for key, row in state.items():
        digest.update(key.encode() + b"\x00" + row)
    return digest.hexdigest()


def encode_state(state: dict[str, bytes]) -> bytes:
    """Row count, the digests, then the keys as JSON (keys may hold any character)."""
    return struct.pack(">I", len(state)) + b"".join(state.values()) + json.dumps(list(state)).encode()


def decode_state(blob: bytes) -> dict[str, bytes]:
    (count,) = struct.unpack_from(">I", blob)
    end = 4 + 8 * count
    digests = [blob[at : at + 8] for at in range(4, end, 8)]
    return dict(zip(json.loads(blob[end:]), digests, strict=True))


def last_applied_digest(conn: Any) -> str | None:
    """The digest of the snapshot the last successful sync applied; None after an incremental sync or before
    any."""
    row = conn.execute(sql.statements(STATE)["last_applied_digest"]).fetchone()
    return row[0] if row else None


def changed_since_applied(conn: Any, state: dict[str, bytes]) -> Scope | None:
    """The members and departments whose rows differ from the last applied complete snapshot's, or that
    callback events re-read since (their rows may no longer be that snapshot's); None when that snapshot's
    rows are not known or too much changed for a scoped merge to pay."""
    statements = sql.statements(STATE)
    applied = conn.execute(statements["applied_state"]).fetchone()
    if applied is None:
        return None
    blob, applied_at = applied
    before = decode_state(blob)
    keys = [k for k, row in state.items() if before.get(k) != row]
    keys += before.keys() - state.keys()
    if len(keys) > MAX_CHANGED_SHARE * max(len(state), 1):
        return None
    userids: set[str] = set()
    departments: set[int] = set()
    for key in keys:
        if key[0] == "d":
            departments.add(int(key[1:]))
        else:
            userids.add(key[1:])
    for userid, new_userid, department_id in conn.execute(statements["touched_since"], {"since": applied_at}):
        userids.update(u.lower() for u in (userid, new_userid) if u)
        if department_id is not None:
            departments.add(department_id)
    return Scope(frozenset(userids), frozenset(departments))


def subset(snapshot: Snapshot, scope: Scope) -> Snapshot:
    """The snapshot's rows for the members and departments in scope (memberships go with their member)."""
    return Snapshot(
        departments={k: v for k, v in snapshot.departments.items() if k in scope.department_ids},
        users={k: v for k, v in snapshot.users.items() if k in scope.userids},
        memberships={k: v for k, v in snapshot.memberships.items() if k[0].lower() in scope.userids},
    )


def save_row_state(conn: Any, snapshot_id: int, sync_run_id: int) -> None:
    """In the apply's transaction: the applied complete snapshot's rows become the ones to compare with."""
    statements = sql.statements(STATE)
    conn.execute(statements["forget_row_state"])
    conn.execute(statements["save_row_state"], {"snapshot_id": snapshot_id, "sync_run_id": sync_run_id})


def carry_row_state(conn: Any, sync_run_id: int) -> None:
    """An unchanged snapshot's sync takes over the row state of the full sync it matched."""
    conn.execute(sql.statements(STATE)["carry_row_state"], {"sync_run_id": sync_run_id})

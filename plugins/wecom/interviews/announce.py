"""Interview changes, found and announced: the one writer of ``wecom.interview_versions`` and of which
reminder cards are superseded (``wecom.interviews.answers`` records how each correction went).

``detect_changes`` compares the platform's interviews (those starting within ``track_days`` of the run,
and every one announced as still ahead) with their newest recorded version, records a version for each
change and, in the same transaction, checks every reminder card still ahead against its interview's newest
version, marking those it makes wrong as superseded (a tap on one is stale from then on).
``announce_changes`` sends each new version's notices through the ledger (``change:<interview>:v<version>``,
once per interviewer), corrects the superseded cards in place and marks the versions announced. What is
decided is in ``wecom.interviews.changes`` (pure)."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from wecom import sql, warehouse
from wecom.delivery import Sender, Summary
from wecom.interviews import answers, changes
from wecom.interviews.changes import Version
from wecom.interviews.inputs import people

log = logging.getLogger(__name__)
CHANGES = "interview/changes.sql"


def detect_changes(
    source: Any, wh: Any, since: datetime, track_days: int, run_id: str | None = None
) -> dict[str, int]:
    """Record what changed about the interviews ahead of ``since`` since they were announced."""
    with wh.transaction():
        wh.execute(sql.statement(CHANGES, "lock"))
        known = {
            v.interview_id: v
            for v in map(Version.from_row, warehouse.dict_rows(wh, CHANGES, "announced", {"since": since}))
        }
        window = {"since": since, "until": since + timedelta(days=track_days), "ids": sorted(known)}
        current = {
            v.interview_id: v
            for v in map(Version.from_row, warehouse.dict_rows(source, CHANGES, "platform_now", window))
        }
        earlier = sorted(current.keys() - known.keys())  # e.g. moved ahead from a time before ``since``
        if earlier:
            rows = warehouse.dict_rows(wh, CHANGES, "announced_by_id", {"ids": earlier})
            known |= {v.interview_id: v for v in map(Version.from_row, rows)}
        found = changes.detect(known, current)
        with wh.cursor() as cur:
            cur.executemany(
                sql.statement(CHANGES, "record_version"), [{**v.row(), "run_id": run_id} for v in found]
            )
        # Every card still ahead, not only those of this run's versions (version 1 too: a card may have gone
        # out for a time the interview had before it was first seen, or beside this run).
        superseded = _supersede_cards(wh)
    report = {
        "interviews_tracked": len(current),
        "first_seen": sum(1 for v in found if v.version == 1),
        "changes_found": sum(1 for v in found if v.version > 1),
        "cards_superseded": superseded,
    }
    if report["changes_found"]:
        log.info("Interview changes: %s", report)
    return report


def _supersede_cards(wh: Any) -> int:
    """Mark the cards the newest versions make wrong, with what they are to show instead."""
    count = 0
    for card in warehouse.dict_rows(wh, CHANGES, "cards_to_supersede"):
        newest = Version.from_row({**card, "starts_at": card["n_starts_at"]})
        text = changes.correction(newest, card["starts_at"], card["on_panel"], card["language"])
        if text is None or text == card["shown_correction"]:
            wh.execute(
                sql.statement(CHANGES, "checked_card"),
                {"task_id": card["task_id"], "version": newest.version},
            )
            continue
        params = {
            "task_id": card["task_id"],
            "version": newest.version,
            "correction": text,
            "sent_as_markdown": card["sent_as_markdown"],
        }
        wh.execute(sql.statement(CHANGES, "supersede_card"), params)
        count += 1
    return count


def announce_changes(hook: Any, wh: Any, sender: Sender, language: str, limit: int = 1000) -> dict[str, Any]:
    """Send the notices of every version not yet announced, correct the cards changes superseded, and mark
    the versions announced. A crash anywhere re-sends nothing (the ledger) and corrects what is left."""
    rows = warehouse.dict_rows(wh, CHANGES, "unannounced", {"limit": limit})
    pairs = [(Version.from_row(row, "p_"), Version.from_row(row)) for row in rows]
    who = people(wh, sorted({p for old, new in pairs for p in old.panel + new.panel}))
    messages, notes = [], []
    for old, new in pairs:
        declined = frozenset(
            userid
            for (userid,) in wh.execute(
                sql.statement(CHANGES, "declined"),
                {"interview_id": old.interview_id, "starts_at": old.starts_at},
            )
        )
        found = changes.notices(old, new, who, language, declined)
        messages += found
        kinds = ", ".join(new.changes)
        notes.append(
            (new, f"{kinds}: {len(found)} notice(s) (wecom.message_log key {changes.notice_key(new)})")
        )
    summary = sender.send(messages) if messages else Summary()
    cards = answers.correct_cards(hook, wh)
    if notes:
        params = {
            "interview_ids": [v.interview_id for v, _ in notes],
            "versions": [v.version for v, _ in notes],
            "notes": [note for _, note in notes],
        }
        wh.execute(sql.statement(CHANGES, "mark_announced"), params)
    counts: Counter[str] = Counter(cards)
    return {
        "changes_announced": len(pairs),
        "change_notices_sent": summary.sent,
        **{f"cards_{k}": v for k, v in sorted(counts.items())},
    }

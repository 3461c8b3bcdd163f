"""Interviewers' answers to reminder cards, taken from the callback inbox (never in the receiver's request).

A click is recorded in one transaction with marking its event processed, so a crash leaves it waiting and
a replay records nothing new: the first answer recorded wins. The card is then updated to show the
recorded answer with the newest unspent response code (each works once, within 72 hours). A code is marked
attempted before the call, so a code WeCom calls spent (60140) after an attempt whose answer was lost is
known to have been spent by us. A decline is told to the recruiter, else the department leaders, through
the ledger (once per recipient, the key naming the reminder as its own key does), and marked told
afterwards, so a crash in between re-sends nothing.

Why not the passive reply in the callback's answer: the receiver answers before the first answer is
decided, so it would show the tapped button even where an earlier answer wins; the update comes seconds
later through the wake-up.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from wecom import sql, warehouse
from wecom.cards import record_code, show_each
from wecom.delivery import Sender, Summary
from wecom.hooks import WeComHook
from wecom.interviews.cards import CHOICES, ReminderCard, answer_text
from wecom.interviews.compose import personal
from wecom.interviews.inputs import leaders_of
from wecom.interviews.keys import decline_key
from wecom.interviews.render import render
from wecom.outbox import Outgoing

log = logging.getLogger(__name__)
ANSWERS = "interview/answers.sql"


def _statement(name: str) -> str:
    return sql.statement(ANSWERS, name)


def _rows(conn: Any, name: str, **params: Any) -> list[dict[str, Any]]:
    return warehouse.dict_rows(conn, ANSWERS, name, params)


def record_cards(conn: Any, cards: list[ReminderCard]) -> None:
    """Before the cards are sent: whatever happens next, a click finds its reminder."""
    if cards:
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(_statement("record_card"), [card.row() for card in cards])


def record_clicks(conn: Any, limit: int = 1000) -> Counter[str]:
    """Record the waiting clicks' answers and response codes; every click event ends processed, with what
    became of it in ``processed_by``."""
    counts: Counter[str] = Counter()
    with conn.transaction():
        conn.execute(_statement("lock"))
        clicks = _rows(conn, "waiting_clicks", limit=limit)
        task_ids = sorted({str(c["task_id"]) for c in clicks if c["task_id"]})
        cards = {
            task_id: (userid, superseded)
            for task_id, userid, superseded in conn.execute(_statement("cards"), {"task_ids": task_ids})
        }
        for click in clicks:
            outcome = _record_click(conn, click, cards)
            counts[outcome.split(":")[0]] += 1
            conn.execute(
                _statement("mark_processed"),
                {"event_id": click["event_id"], "by": f"reminder answers: {outcome}"},
            )
    return counts


def _record_click(conn: Any, click: dict[str, Any], cards: dict[str, tuple[str, bool]]) -> str:
    owner, superseded = cards.get(click["task_id"] or "", (None, False))
    if owner is None:
        return "ignored: not a reminder card"
    if str(click["userid"] or "").lower() != owner:
        return "ignored: tapped by someone the card was not sent to"
    record_code(conn, click["response_code"], click["task_id"], click["clicked_at"])
    if superseded:  # the interview changed after the card: its buttons answer nothing
        return _stale(conn, click["task_id"])
    choice = CHOICES.get(click["event_key"] or "")
    if choice is None:
        return "ignored: not one of the card's buttons"
    recorded = conn.execute(
        _statement("record_answer"),
        {
            "task_id": click["task_id"],
            "choice": choice,
            "clicked_at": click["clicked_at"],
            "event_id": click["event_id"],
        },
    ).fetchone()
    if recorded:
        return "recorded"
    if conn.execute(_statement("superseded"), {"task_id": click["task_id"]}).fetchone()[0]:
        return _stale(conn, click["task_id"])  # superseded since the cards were read
    return "duplicate: the first answer stands"


def _stale(conn: Any, task_id: str) -> str:
    conn.execute(_statement("correct_again"), {"task_id": task_id})
    return "stale: the interview changed after this card; the card is corrected again"


def update_cards(hook: WeComHook, conn: Any, limit: int = 1000) -> Counter[str]:
    """Make each answered card show its answer; ``pending`` counts cards a transient fault left for later."""
    cards = _rows(conn, "cards_to_update", limit=limit)
    return show_each(
        hook,
        conn,
        cards,
        lambda c: answer_text(c["choice"], c["clicked_at"], c["language"]),
        _statement("card_outcome"),
    )


def correct_cards(hook: WeComHook, conn: Any, limit: int = 1000) -> Counter[str]:
    """Make each card a change superseded show the correction (已取消, 已改期至 ...) instead of its buttons."""
    cards = _rows(conn, "cards_to_correct", limit=limit)
    return show_each(hook, conn, cards, lambda c: c["correction"], _statement("correction_outcome"))


def notify_declines(sender: Sender, conn: Any, limit: int = 1000) -> Summary:
    """Tell the recruiter (else the interviewer's department leaders) of each decline, once each."""
    declines = _rows(conn, "declines_to_notify", limit=limit)
    leaders = leaders_of(conn, sorted({d["userid"] for d in declines if not d["recruiter_userid"]}))
    messages: list[Outgoing] = []
    told: dict[str, str] = {}
    for decline in declines:
        if decline["superseded"]:  # the interview changed before anyone was told: the notice says what is now
            told[decline["task_id"]] = (
                "nobody told: the interview changed (cancelled or moved) before the decline was told"
            )
            continue
        recipients = (
            [decline["recruiter_userid"]] if decline["recruiter_userid"] else leaders.get(decline["userid"])
        )
        if not recipients:
            told[decline["task_id"]] = (
                "nobody told: the platform names no recruiter and the interviewer's department has no leader"
            )
            continue
        content = render("decline", decline["language"], c=decline, interviewer=decline["interviewer_name"])
        key = decline_key(decline["interview_id"], decline["starts_at"], decline["userid"])
        for recipient in recipients:
            messages += personal(key, recipient, content, None)
        who = "recruiter" if decline["recruiter_userid"] else "department leader(s)"
        told[decline["task_id"]] = f"{who} {', '.join(recipients)} (wecom.message_log key {key})"
    summary = sender.send(messages) if messages else Summary()
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(_statement("notified"), [{"task_id": t, "note": note} for t, note in told.items()])
    return summary

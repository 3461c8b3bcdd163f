"""Answerable cards shown as decided: their buttons replaced with what was decided, by
``message/update_template_card`` with the card's newest unspent response code (``wecom.card_codes``).

Each code works once, within 72 hours: the send's (kept in the ledger) and each tap's. A code is marked
attempted (committed) before each call, so a code WeCom calls spent (60140) after an attempt whose answer was
lost is known to have been spent by us. Reminder cards and question cards both go through here; each caller
records the outcome in its own table with its ``outcome`` statement (``status``, ``note``, ``task_id``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from wecom import sql, warehouse
from wecom.errors import CARD_CODE_INVALID, WeComCallerError, WeComItemError, WeComTransientError
from wecom.hooks import WeComHook

log = logging.getLogger(__name__)
CODES = "delivery/card_codes.sql"
TRIES_PER_CODE = 3


def _statement(name: str) -> str:
    return sql.statement(CODES, name)


def record_code(conn: Any, code: str | None, task_id: str, issued_at: Any) -> None:
    """A tap's response code joins its card's codes (a code longer than WeCom's is no code of WeCom's)."""
    if code and len(code) <= 512:
        conn.execute(_statement("record_code"), {"code": code, "task_id": task_id, "issued_at": issued_at})


def show_each(
    hook: WeComHook,
    conn: Any,
    cards: list[dict[str, Any]],
    text: Callable[[dict[str, Any]], str],
    outcome: str,
) -> Counter[str]:
    """Show ``text(card)`` on each card in turn; ``pending`` counts those a transient fault left untried."""
    counts: Counter[str] = Counter()
    for n, card in enumerate(cards):
        status, note = show_on_card(hook, conn, card, text(card), outcome)
        if status == "pending":  # WeCom is not answering: the rest wait for the retry, untried
            counts["pending"] += len(cards) - n
            break
        counts[status] += 1
    return counts


def show_on_card(
    hook: WeComHook, conn: Any, card: dict[str, Any], text: str, outcome: str
) -> tuple[str, str | None]:
    """Replace the card's buttons with ``text`` for its interviewer, with the newest unspent response code:
    ``updated``, ``not_updated`` (and why, both recorded by the ``outcome`` statement) or ``pending``
    (WeCom did not answer; try again later). A code is marked attempted (committed) before each call."""
    with conn.transaction():
        conn.execute(_statement("adopt_send_code"), card)
        codes = warehouse.dict_rows(conn, CODES, "usable_codes", {"task_id": card["task_id"]})
    status, note, used = _show(hook, conn, card, text, codes)
    if status != "pending":
        with conn.transaction():
            if used:
                conn.execute(_statement("spend_code"), {"code": used})
            conn.execute(outcome, {"status": status, "note": note, "task_id": card["task_id"]})
    return status, note


def _show(
    hook: WeComHook, conn: Any, card: dict[str, Any], text: str, codes: list[dict[str, Any]]
) -> tuple[str, str | None, str | None]:
    """The outcome, and the code that worked (spent with the outcome's record)."""
    for code in codes:
        attempted = code["attempted"]
        for attempt in range(TRIES_PER_CODE):
            conn.execute(_statement("attempt_code"), {"code": code["response_code"]})
            try:
                hook.update_card_buttons(code["response_code"], [card["userid"]], text, retries=0)
            except WeComTransientError as exc:
                log.warning(
                    "Card %s not updated yet (%s); try %d/%d",
                    card["task_id"],
                    exc,
                    attempt + 1,
                    TRIES_PER_CODE,
                )
                attempted = True  # the call may have reached WeCom and spent the code
                time.sleep(0.2 * 2**attempt)
                continue
            except (WeComItemError, WeComCallerError) as exc:
                conn.execute(_statement("spend_code"), {"code": code["response_code"]})
                if exc.errcode != CARD_CODE_INVALID:
                    return "not_updated", f"WeCom refused the update: {exc}", None
                if attempted:
                    return (
                        "updated",
                        "an earlier attempt spent the code; its answer was lost on the way",
                        None,
                    )
                break  # used or expired: the next older code
            return "updated", None, code["response_code"]
        else:
            return "pending", None, None
    return (
        "not_updated",
        (
            "no usable response code: WeCom refused each as used or expired (60140, codes last 72 hours);"
            " the card still shows its buttons"
        ),
        None,
    )

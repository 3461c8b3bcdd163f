"""Every way the WeCom integration fails on purpose, in two families under ``WeComError``, and one errcode
table (``ERRCODES``) that decides the reaction to each of WeCom's answers.

**WeCom's answers** (``WeComAnswerError``: ``errcode``, a scrubbed ``errmsg``, the API ``path``). ``error_for``
picks the class from the code's ``Reaction`` in ``ERRCODES``; ``read_answer`` reports a missing, garbled or
overloaded answer as ``BUSY`` (-1). Retry rule: *the table decides*. A code whose reaction is CONFIG or
CALLER fails the task at once (the class is an ``AirflowFailException``: no Airflow retries); every other
answer leaves the task to Airflow's retries: RETRY after the hook's own bounded retries, BLOCK after the
task's retry delay, REFRESH after one refresh, ITEM when a caller lets it escape, and codes outside the table.

- ``WeComTransientError`` (RETRY): busy, overloaded, unreachable or garbled after the hook's retries.
- ``WeComRateLimitedError`` (BLOCK, 45009): never retried hot; the task's retry delay waits out the window.
- ``WeComTokenError`` (REFRESH): a token error survived one refresh.
- ``WeComItemError`` (ITEM): one user or department is invalid; batch callers record it and go on.
- ``WeComConfigError`` (CONFIG): WeCom says the app, secret, corp, IP or agent is misconfigured. Retrying
  can get the IP banned: fails at once.
- ``WeComCallerError`` (CALLER): WeCom says our request was malformed: fails at once.

**Ours** (``LocalError``: found on this side, ``errcode`` None). Retry rule: *Airflow retries
only what time can settle*. Only ``WorkPending`` can be settled by time and is retried; a retry of the same
task meets the same settings, input and warehouse, so the others fail the task at once (``AirflowFailException``).

- ``SettingsError``: our configuration is wrong: a connection field, the callback secrets, a host that is not
  WeCom's API (an HTTP status other than 200, 429 and 5xx).
- ``WeComDataError``: input that can never succeed (a message over WeCom's limits, directory data we cannot
  load, a bad param), with what to change.
- ``PipelineStateError``: the warehouse is not in the state a step needs, with what to clear or run.
- ``WorkPending``: everything else is done; what is left waits for the task's retry (or the next run).

A callback the receiver refuses (``wecom.callbacks.crypto.CallbackRejected``) is in neither family: it is the
receiver's verdict on a request from the internet, answered 4xx and logged, never raised into a task.
"""

from __future__ import annotations

import enum
import json
import re
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from wecom.redact import redact


class Reaction(enum.Enum):
    RETRY = "retry"  # transient: bounded retries with backoff
    REFRESH = "refresh"  # the token: invalidate if still the same, refresh, retry once
    BLOCK = "block"  # a frequency window was broken: wait it out (the task's retry delay)
    CONFIG = "config"  # misconfigured: fail at once, never retry
    ITEM = "item"  # one recipient, user or department: record it and go on
    CALLER = "caller"  # our request is malformed: fail at once

    @property
    def fails_at_once(self) -> bool:
        """The family's retry rule: True when Airflow must not retry the task (``AirflowFailException``)."""
        return self in (Reaction.CONFIG, Reaction.CALLER)


OK = 0
BUSY = -1  # WeCom's "system busy"; also what a garbled or missing answer is reported as
NO_VALID_RECIPIENT = 81013
USER_NOT_FOUND = 60111
RATE_LIMITED = 45009
CARDS_NEED_CALLBACK = 43012
CARD_CODE_INVALID = 60140
SCHEDULE_FORBIDDEN = (48002, 90472)  # the app may not use the calendar (日程) API
CALENDAR_GONE = (90457, 90459, 90466)  # the app's calendar is unknown, deleted or another app's
SCHEDULE_GONE = (90460, 90461)  # the schedule was deleted already, or is unknown

# fmt: off
ERRCODES: dict[int, tuple[Reaction, str]] = {
    BUSY: (Reaction.RETRY, "WeCom is busy or the answer was unusable"),
    6000: (Reaction.RETRY, "data version conflict"),
    45033: (Reaction.RETRY, "too many concurrent calls to this API"),
    RATE_LIMITED: (Reaction.BLOCK, "frequency blocked: wait for the window"),
    40014: (Reaction.REFRESH, "the access token is invalid or was revoked"),
    42001: (Reaction.REFRESH, "the access token expired"),
    41001: (Reaction.REFRESH, "the access token is missing"),
    40001: (Reaction.CONFIG, "the app secret is wrong or the app is disabled: check the connection's password"),
    40013: (Reaction.CONFIG, "the corp id is wrong: check the connection's login"),
    40091: (Reaction.CONFIG, "the secret does not belong to this corp: check login and password together"),
    45031: (Reaction.CONFIG, "the app secret must be reset in the WeCom admin console, then update the connection"),
    48002: (Reaction.CONFIG, "this API is not allowed for this app's secret: grant it in the admin console"),
    48009: (Reaction.CONFIG, "a contact-sync secret was used from a new IP: confirm it in the admin console"),
    60020: (Reaction.CONFIG, "the worker's egress IP is not in the app's trusted IPs: add it (README runbook)"),
    301002: (Reaction.CONFIG, "agent_id is not the app this secret belongs to: fix agent_id in the extra"),
    40056: (Reaction.CONFIG, "agent_id is invalid: fix agent_id in the connection extra"),
    93000: (Reaction.CONFIG, "the group robot's webhook key is invalid or the robot was removed"),
    93004: (Reaction.CONFIG, "the group robot is disabled"),
    USER_NOT_FOUND: (Reaction.ITEM, "the userid does not exist or is outside the app's visible range"),
    60011: (Reaction.ITEM, "outside the app's visible range"),
    60021: (Reaction.ITEM, "outside the app's visible range"),
    40003: (Reaction.ITEM, "invalid userid"),
    60003: (Reaction.ITEM, "the department does not exist"),
    60123: (Reaction.ITEM, "the department does not exist"),
    NO_VALID_RECIPIENT: (Reaction.ITEM, "no recipient is valid"),
    40035: (Reaction.CALLER, "a parameter is invalid"),
    40031: (Reaction.CALLER, "too many or invalid recipients"),
    40032: (Reaction.CALLER, "too many recipients"),
    82002: (Reaction.CALLER, "too many recipients"),
    82001: (Reaction.CALLER, "no recipient"),
    40058: (Reaction.CALLER, "invalid JSON or a value too long"),
    44004: (Reaction.CALLER, "empty content"),
    45002: (Reaction.CALLER, "content too large"),
    45029: (Reaction.CALLER, "response too large: split the request"),
    # Answerable cards (template_card button_interaction, message/update_template_card).
    CARDS_NEED_CALLBACK: (Reaction.CONFIG, "the app has no callback URL, so it cannot send answerable cards: set one (README)"),
    CARD_CODE_INVALID: (Reaction.ITEM, "the response_code was used already or expired (single use, 72 hours)"),
    42014: (Reaction.CALLER, "task_id is invalid or already used by this app"),
    42015: (Reaction.CALLER, "the card was not sent by this app"),
    42016: (Reaction.ITEM, "the card's task_id does not exist"),
    42017: (Reaction.CALLER, "no such button key on the card"),
    42018: (Reaction.CALLER, "invalid button key"),
    42038: (Reaction.CALLER, "a button's text is missing or invalid"),
    42039: (Reaction.CALLER, "a button's key is missing, invalid or repeated"),
    # Calendars and schedules (oa/calendar/*, oa/schedule/*): wecom.interviews.calendar.
    90472: (Reaction.CONFIG, "no calendar/schedule permission: admin console, 日程 → 可调用接口的应用, add the app"),
    90457: (Reaction.ITEM, "the calendar does not exist: the app's calendar is created again"),
    90459: (Reaction.ITEM, "the calendar was deleted: the app's calendar is created again"),
    90466: (Reaction.ITEM, "the calendar or schedule belongs to another app: the app's calendar is created again"),
    90460: (Reaction.ITEM, "the schedule was deleted already (a second delete is done)"),
    90461: (Reaction.ITEM, "the schedule id is unknown: the schedule is added again"),
    90456: (Reaction.CALLER, "the calendar's organizer is missing"),
    90463: (Reaction.CALLER, "a calendar's organizer or a schedule's calendar cannot change"),
    90464: (Reaction.CALLER, "too many attendees (1000)"),
    90469: (Reaction.CALLER, "get_by_calendar limit must be 1-1000"),
    90470: (Reaction.CALLER, "get_by_calendar offset is invalid"),
    90471: (Reaction.CALLER, "remind_before_event_secs must be 0, 300, 900, 3600 or 86400"),
    90704: (Reaction.CALLER, "remind_time_diffs values must be 0, -300, -900, -3600 or -86400"),
    90473: (Reaction.CALLER, "the calendar colour must be #RRGGBB"),
    90706: (Reaction.CALLER, "the schedule's start cannot move into the past"),
    90708: (Reaction.CALLER, "no cal_id and no default calendar"),
}
# fmt: on

_HINT = re.compile(r",?\s*hint:\s*\[[^\]]*\]")
_MORE_INFO = re.compile(r",?\s*more info at\s*\S+")


def reaction(errcode: int) -> Reaction | None:
    """What to do about a code; None for codes outside the table (no hot retry, the task's retries apply)."""
    entry = ERRCODES.get(errcode)
    return entry[0] if entry else None


def scrub_errmsg(errmsg: object) -> str:
    """Keep what helps an operator (the text, the caller IP) and drop hints, help URLs and secrets."""
    text = str(errmsg or "")[:500]
    text = _MORE_INFO.sub("", _HINT.sub("", text))
    return redact(text).strip(" ,")


class WeComError(Exception):
    """Anything this integration raises on purpose: one of WeCom's answers or one of ours (see the module)."""

    errcode: int | None = None  # WeCom's code, when WeCom answered


# -- WeCom's answers --------------------------------------------------------------------------------


class WeComAnswerError(WeComError):
    """WeCom refused a call (or gave no usable answer); carries the errcode, a scrubbed errmsg and the API
    path. The class comes from the code's reaction in ``ERRCODES``; this class itself is an unlisted code."""

    errcode: int

    def __init__(self, errcode: int, errmsg: str, path: str, advice: str = "") -> None:
        self.errcode = errcode
        self.errmsg = scrub_errmsg(errmsg)
        self.path = path
        self.advice = advice
        suffix = f" ({advice})" if advice else ""
        super().__init__(f"WeCom {path} failed: errcode {errcode}: {self.errmsg}{suffix}")

    def __reduce__(self):  # keep pickling (multiprocessing, Airflow) working with our signature
        return (self.__class__, (self.errcode, self.errmsg, self.path, self.advice))


class WeComTransientError(WeComAnswerError):
    """Busy, overloaded, unreachable or garbled after the hook's own retries."""

    @classmethod
    def about(cls, path: str, what: str) -> WeComTransientError:
        """No usable answer at all (network, HTTP status, body): reported as WeCom's 'busy'."""
        return cls(BUSY, what, path)


class WeComRateLimitedError(WeComAnswerError):
    """45009: a frequency limit was hit; retry only after the window (the task's retry delay)."""


class WeComTokenError(WeComAnswerError):
    """The access token was rejected twice in a row."""


class WeComItemError(WeComAnswerError):
    """One recipient, user or department is invalid; the rest of a batch is unaffected."""


class WeComConfigError(WeComAnswerError, AirflowFailException):
    """WeCom says the app is misconfigured: no retry can fix it; fails the task without Airflow retries."""


class WeComCallerError(WeComAnswerError, AirflowFailException):
    """WeCom says our request should never have been sent (a bug or invalid input on our side)."""


_CLASSES: dict[Reaction, type[WeComAnswerError]] = {
    Reaction.RETRY: WeComTransientError,
    Reaction.BLOCK: WeComRateLimitedError,
    Reaction.REFRESH: WeComTokenError,
    Reaction.CONFIG: WeComConfigError,
    Reaction.ITEM: WeComItemError,
    Reaction.CALLER: WeComCallerError,
}


# -- ours -------------------------------------------------------------------------------------------


class LocalError(WeComError):
    """Found on our side, without an answer from WeCom to blame; the message says what to change."""


class SettingsError(LocalError, AirflowFailException):
    """Our configuration is wrong (a connection field, the callback secrets, the API host): fails at once."""


class WeComDataError(LocalError, AirflowFailException):
    """Input that can never succeed as given; the message says which item and what to change."""


class PipelineStateError(LocalError, AirflowFailException):
    """The warehouse is not in the state this step needs (a snapshot gone, a migration missing); the
    message says what to clear or run. Retrying the same step cannot help."""


class WorkPending(LocalError):
    """The task did what it could; the rest waits for its retry (or the next run), which Airflow schedules.
    Raise it last, after recording what was done: ``raise WorkPending("2 card(s) not updated yet: ...")``."""


def error_for(errcode: int, errmsg: str, path: str) -> WeComAnswerError:
    """The exception for a non-zero errcode, with the table's advice."""
    entry = ERRCODES.get(errcode)
    if entry is None:
        advice = "unlisted errcode: look it up in WeCom's global error table"
        return WeComAnswerError(errcode, errmsg, path, advice)
    kind, advice = entry
    if kind is Reaction.REFRESH:
        advice = "the token was rejected again after a refresh"
    return _CLASSES[kind](errcode, errmsg, path, advice)


def _describe(content: bytes) -> str:
    """What came back instead of a WeCom answer, without echoing it (it may carry anything)."""
    kind = "HTML page" if content[:64].lstrip().startswith(b"<") else "invalid or truncated JSON"
    return f"{kind}, {len(content)} bytes"


def read_answer(status: int, content: bytes, path: str) -> dict[str, Any]:
    """One HTTP answer as a WeCom body (``errcode`` may still be non-zero), or the error saying why not.

    WeCom's API answers 200, errors included. 5xx and 429 (an overloaded WeCom or gateway), non-JSON and
    truncated bodies are transient (``BUSY``). Any other status is ours, a ``SettingsError``: the host (or the
    proxy) is not WeCom's API. A body without ``errcode`` counts as success (gettoken may omit it).
    """
    if status >= 500 or status == 429:
        raise WeComTransientError.about(path, f"HTTP {status} ({_describe(content)})")
    if status != 200:
        raise SettingsError(
            f"WeCom {path}: HTTP {status} ({_describe(content)}) is not an answer of WeCom's API:"
            " check the connection's host (the API base URL) and proxy"
        )
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise WeComTransientError.about(path, f"non-JSON body ({_describe(content)})") from None
    if not isinstance(body, dict) or type(body.get("errcode", OK)) is not int:
        raise WeComTransientError.about(path, "JSON body is not a WeCom response object")
    return body

"""One exception family for every way a WeCom call can fail, classified by what the caller should do.

The class decides the reaction (see the error table in the WeCom reference):

- ``WeComTransientError``: the hook already retried with backoff; Airflow's task retries may try again.
- ``WeComRateLimitedError`` (45009): a frequency window was broken; never retry hot, let the task's
  retry delay (>= 60 s) handle it.
- ``WeComTokenError``: a token error survived one refresh.
- ``WeComConfigError``: the app, secret, corp, IP or agent is misconfigured. Retrying can get the IP
  banned, so it is an ``AirflowFailException``: the task fails at once, with no retries.
- ``WeComCallerError``: our request was malformed (too long, too many recipients...). Also fails at once.
- ``WeComItemError``: one item (a user, a department) is invalid; batch callers record it and go on.
"""

from __future__ import annotations

import re

from airflow.sdk.exceptions import AirflowFailException

from wecom.redact import redact

TOKEN_ERRCODES = frozenset({40014, 42001, 41001})
TRANSIENT_ERRCODES = frozenset({-1, 6000, 45033})
RATE_LIMIT_ERRCODES = frozenset({45009})
CONFIG_ERRCODES = frozenset({40001, 40013, 40091, 45031, 48002, 48009, 60020, 301002, 40056, 93000, 93004})
ITEM_ERRCODES = frozenset({60111, 60011, 60021, 40003, 60003, 60123, 81013})
CALLER_ERRCODES = frozenset({40035, 40031, 40032, 82002, 40058, 44004, 45002, 45029, 82001})

# What an operator should do about a configuration error; shown in the exception message.
CONFIG_ADVICE: dict[int, str] = {
    40001: "the app secret is wrong or the app is disabled: check the connection's password",
    40013: "the corp id is wrong: check the connection's login",
    40091: "the secret does not belong to this corp: check login and password together",
    45031: "the app secret must be reset in the WeCom admin console, then update the connection",
    48002: "this API is not allowed for this app's secret: grant the permission in the admin console",
    48009: "a contact-sync secret was used from a new IP: confirm it in the admin console",
    60020: "the worker's egress IP is not in the app's trusted IPs: add it (see the README runbook)",
    301002: "agent_id is not the app this secret belongs to: fix agent_id in the connection extra",
    40056: "agent_id is invalid: fix agent_id in the connection extra",
    93000: "the group robot's webhook key is invalid or the robot was removed",
    93004: "the group robot is disabled",
}

_HINT = re.compile(r",?\s*hint:\s*\[[^\]]*\]")
_MORE_INFO = re.compile(r",?\s*more info at\s*\S+")


def scrub_errmsg(errmsg: object) -> str:
    """Keep what helps an operator (the text, the caller IP) and drop hints, help URLs and secrets."""
    text = str(errmsg or "")[:500]
    text = _MORE_INFO.sub("", _HINT.sub("", text))
    return redact(text).strip(" ,")


class WeComError(Exception):
    """A WeCom call failed; carries the errcode, a scrubbed errmsg and the API path."""

    def __init__(self, errcode: int, errmsg: str, path: str, advice: str = "") -> None:
        self.errcode = errcode
        self.errmsg = scrub_errmsg(errmsg)
        self.path = path
        self.advice = advice
        message = f"WeCom {path} failed: errcode {errcode}: {self.errmsg}"
        if advice:
            message += f" ({advice})"
        super().__init__(message)

    def __reduce__(self):  # keep pickling (multiprocessing, Airflow) working with our signature
        return (self.__class__, (self.errcode, self.errmsg, self.path, self.advice))


class WeComTransientError(WeComError):
    """Busy, overloaded, unreachable or garbled after the hook's own retries."""


class WeComRateLimitedError(WeComError):
    """45009: a frequency limit was hit; retry only after the window (the task's retry delay)."""


class WeComTokenError(WeComError):
    """The access token was rejected twice in a row."""


class WeComItemError(WeComError):
    """One recipient, user or department is invalid; the rest of a batch is unaffected."""


class WeComConfigError(WeComError, AirflowFailException):
    """Misconfiguration that no retry can fix; fails the task without Airflow retries."""


class WeComCallerError(WeComError, AirflowFailException):
    """A request that should never have been sent (a bug or invalid input on our side)."""


def error_for(errcode: int, errmsg: str, path: str) -> WeComError:
    """Build the right exception for a non-zero errcode."""
    if errcode in TRANSIENT_ERRCODES:
        return WeComTransientError(errcode, errmsg, path)
    if errcode in RATE_LIMIT_ERRCODES:
        return WeComRateLimitedError(errcode, errmsg, path, "frequency blocked: wait for the window")
    if errcode in TOKEN_ERRCODES:
        return WeComTokenError(errcode, errmsg, path, "the token was rejected again after a refresh")
    if errcode in CONFIG_ERRCODES:
        return WeComConfigError(errcode, errmsg, path, CONFIG_ADVICE.get(errcode, ""))
    if errcode in ITEM_ERRCODES:
        return WeComItemError(errcode, errmsg, path)
    if errcode in CALLER_ERRCODES:
        return WeComCallerError(errcode, errmsg, path, "the request is invalid and was not retried")
    # Unknown codes: no hot retry in the hook; the task's own retries (with their delay) still apply.
    return WeComError(errcode, errmsg, path, "unlisted errcode: look it up in WeCom's global error table")

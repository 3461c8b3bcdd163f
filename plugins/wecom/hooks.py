"""WeComHook: a client for WeCom's server API that is correct under retries, limits and revocation."""

from __future__ import annotations

import json as jsonlib
import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from wecom.client import BaseWeComHook, exchange
from wecom.connections import WeComSettings
from wecom.errors import (
    NO_VALID_RECIPIENT,
    OK,
    Reaction,
    SettingsError,
    WeComError,
    WeComItemError,
    WeComTransientError,
    error_for,
    reaction,
)
from wecom.redact import redact, register_secret
from wecom.token_store import CachedToken, TokenStore, cache_key, memory_store, postgres_store

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "wecom_default"  # the WeCom app connection every task, hook and receiver uses by default


@dataclass(frozen=True)
class SendResult:
    """What message/send says about who got a message."""

    msgid: str | None = None
    invalid_users: list[str] = field(default_factory=list)
    invalid_parties: list[str] = field(default_factory=list)
    invalid_tags: list[str] = field(default_factory=list)
    unlicensed_users: list[str] = field(default_factory=list)
    errcode: int = OK
    response_code: str | None = field(default=None, repr=False)  # answerable cards: one card update
    fallback: str | None = None  # why the message's fallback went out instead of it

    @property
    def all_invalid(self) -> bool:
        return self.errcode == NO_VALID_RECIPIENT


def _split(value: Any) -> list[str]:
    return [part for part in str(value or "").split("|") if part]


class WeComHook(BaseWeComHook):
    """A client for one WeCom app (corp id + secret + agent id) named by an Airflow connection.

    The connection is read lazily: building the hook does no I/O. The secret comes only from the
    connection's password; the access token is cached per (corp id, secret) in ``token_store``.

    :param wecom_conn_id: connection of type ``wecom``: host = API base URL, login = corp id,
        password = app secret, extra = ``agent_id`` and the knobs of ``WeComSettings``.
    :param token_store: where tokens are cached; by default the connection's ``token_store`` extra
        (``postgres``, shared by every worker process, or ``memory``).
    """

    conn_name_attr = "wecom_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "wecom"
    hook_name = "WeCom"
    settings_class = WeComSettings
    settings: WeComSettings

    def __init__(
        self, wecom_conn_id: str = default_conn_name, *, token_store: TokenStore | None = None
    ) -> None:
        super().__init__()
        self.wecom_conn_id = wecom_conn_id
        self._explicit_store = token_store
        self._token: CachedToken | None = None

    @cached_property
    def token_store(self) -> TokenStore:
        if self._explicit_store is not None:
            return self._explicit_store
        if self.settings.token_store == "memory":
            return memory_store()
        return postgres_store(self.settings.warehouse_conn_id)

    @property
    def agent_id(self) -> int:
        if self.settings.agent_id is None:
            raise SettingsError(f"connection {self.wecom_conn_id!r} needs agent_id in its extra")
        return self.settings.agent_id

    # -- tokens -------------------------------------------------------------------------------

    @property
    def _cache_key(self) -> str:
        return cache_key(self.settings.corp_id, self.settings.secret)

    def get_access_token(self) -> str:
        """A token valid for at least the margin; fetched at most once across processes."""
        margin = self.settings.token_margin
        if self._token is None or not self._token.fresh(margin):
            self._token = self.token_store.get(self._cache_key, self._fetch_token, margin)
            register_secret(self._token.value)
        return self._token.value

    def _fetch_token(self) -> tuple[str, int]:
        params = {"corpid": self.settings.corp_id, "corpsecret": self.settings.secret}
        body = exchange(self.session, self.settings, "GET", "gettoken", params)
        errcode = body.get("errcode", OK)
        if errcode != OK:
            raise error_for(errcode, body.get("errmsg", ""), "gettoken")
        token, expires_in = body.get("access_token"), body.get("expires_in", 7200)
        if not isinstance(token, str) or not token or not isinstance(expires_in, int):
            raise WeComTransientError.about("gettoken", "gettoken answered without a usable token")
        register_secret(token)
        log.info("Fetched a new WeCom access token (expires in %s s)", expires_in)
        return token, expires_in

    def _invalidate(self, token: str) -> None:
        self._token = None
        self.token_store.invalidate(self._cache_key, token)

    # -- calls --------------------------------------------------------------------------------

    def call(
        self,
        http_method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        retries: int | None = None,
    ) -> dict[str, Any]:
        """Call ``/cgi-bin/{path}`` with the token; return the body on errcode 0, raise otherwise.
        ``retries``: transient faults retried (default the connection's ``max_retries``).

        A token error (40014/42001/41001) drops the token only if it is still the cached one,
        refreshes and retries once; a second token error raises ``WeComTokenError``.
        """
        # Serialised once, keys sorted: a retry sends the same bytes, which WeCom's duplicate check relies on,
        # whatever order the body was built in (a deferral's round trip through jsonb reorders keys).
        data = (
            None
            if json is None
            else jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
        )
        for attempt in (1, 2):
            token = self.get_access_token()
            body = exchange(
                self.session,
                self.settings,
                http_method,
                path,
                {**(params or {}), "access_token": token},
                data,
                retries,
            )
            errcode = body.get("errcode", OK)
            if errcode == OK:
                return body
            if reaction(errcode) is not Reaction.REFRESH or attempt == 2:
                raise error_for(errcode, body.get("errmsg", ""), path)
            log.warning("WeCom rejected the access token on %s (errcode %s); refreshing", path, errcode)
            self._invalidate(token)
        raise AssertionError("unreachable")

    # -- typed helpers ------------------------------------------------------------------------

    def _listed(self, path: str, field_name: str, params: dict[str, Any] | None) -> list[dict[str, Any]]:
        items = self.call("GET", path, params=params).get(field_name)
        if not isinstance(items, list):
            raise WeComTransientError.about(path, f"{path} answered without a {field_name} list")
        return items

    def list_departments(self, department_id: int | None = None) -> list[dict[str, Any]]:
        """The department and its descendants, or the whole visible tree."""
        params = {"id": department_id} if department_id is not None else None
        return self._listed("department/list", "department", params)

    def list_department_members(self, department_id: int) -> list[dict[str, Any]]:
        """Members listed directly in one department (no ``fetch_child``: big orgs get 45029)."""
        return self._listed("user/list", "userlist", {"department_id": department_id})

    def get_member(self, userid: str) -> dict[str, Any] | None:
        """One member as user/list lists them; None when WeCom no longer knows the userid (removed)."""
        try:
            body = self.call("GET", "user/get", params={"userid": userid})
        except WeComItemError:
            return None
        return {k: v for k, v in body.items() if k not in ("errcode", "errmsg")}

    def get_department(self, department_id: int) -> dict[str, Any] | None:
        """One department; None when WeCom no longer knows it (removed)."""
        try:
            body = self.call("GET", "department/get", params={"id": department_id})
        except WeComItemError:
            return None
        department = body.get("department")
        if not isinstance(department, dict):
            raise WeComTransientError.about("department/get", "department/get answered without a department")
        return department

    def send_message(self, payload: dict[str, Any]) -> SendResult:
        """Send one application message; invalid recipients come back in the result, not as errors."""
        message = {"agentid": self.agent_id, **payload}
        try:
            body = self.call("POST", "message/send", json=message)
        except WeComItemError as exc:
            if exc.errcode != NO_VALID_RECIPIENT:
                raise
            return SendResult(
                invalid_users=_split(message.get("touser")),
                invalid_parties=_split(message.get("toparty")),
                invalid_tags=_split(message.get("totag")),
                errcode=NO_VALID_RECIPIENT,
            )
        return SendResult(
            msgid=body.get("msgid") or None,
            invalid_users=_split(body.get("invaliduser")),
            invalid_parties=_split(body.get("invalidparty")),
            invalid_tags=_split(body.get("invalidtag")),
            unlicensed_users=_split(body.get("unlicenseduser")),
            response_code=body.get("response_code") or None,
        )

    def update_card_buttons(
        self, response_code: str, userids: list[str], replace_name: str, retries: int | None = None
    ) -> None:
        """Turn the buttons of an answerable card into ``replace_name`` for these members. Each
        ``response_code`` (from the send, or from a click's callback) works once, within 72 hours; a used
        or expired one raises ``WeComItemError`` (60140). A blind retry after a lost answer meets 60140
        for a code the first try spent: ``retries=0`` leaves that judgement to the caller."""
        body = {
            "userids": userids,
            "agentid": self.agent_id,
            "response_code": response_code,
            "button": {"replace_name": replace_name},
        }
        self.call("POST", "message/update_template_card", json=body, retries=retries)

    def recall_message(self, msgid: str) -> None:
        """Recall a message sent within the last 24 hours."""
        self.call("POST", "message/recall", json={"msgid": msgid})

    # -- calendar (日程) -------------------------------------------------------------------------

    def add_calendar(
        self, organizer: str, summary: str, color: str = "#2F80ED", description: str = ""
    ) -> str:
        """A calendar owned by the app, for its schedules (an app lists only calendars it created)."""
        calendar = {"organizer": organizer, "summary": summary, "color": color, "description": description}
        body = self.call("POST", "oa/calendar/add", json={"calendar": calendar, "agentid": self.agent_id})
        return str(body["cal_id"])

    def add_schedule(self, cal_id: str, schedule: dict[str, Any]) -> str:
        """One schedule; never retried here: WeCom has no duplicate check, a retry after a lost answer is a
        second schedule (``wecom.interviews.calendar`` claims, records and reconciles instead)."""
        payload = {"schedule": {**schedule, "cal_id": cal_id}, "agentid": self.agent_id}
        return str(self.call("POST", "oa/schedule/add", json=payload, retries=0)["schedule_id"])

    def update_schedule(self, schedule_id: str, schedule: dict[str, Any]) -> None:
        """Overwrite the whole schedule (fields left out are cleared; the attendees are replaced)."""
        self.call("POST", "oa/schedule/update", json={"schedule": {**schedule, "schedule_id": schedule_id}})

    def delete_schedule(self, schedule_id: str) -> None:
        self.call("POST", "oa/schedule/del", json={"schedule_id": schedule_id})

    def calendar_schedules(self, cal_id: str, page: int = 1000) -> list[dict[str, Any]]:
        """Every schedule of one of the app's calendars, deleted ones included (``status`` 1)."""
        found: list[dict[str, Any]] = []
        while True:
            body = {"cal_id": cal_id, "offset": len(found), "limit": page}
            batch = self.call("POST", "oa/schedule/get_by_calendar", json=body).get("schedule_list") or []
            found += batch
            if len(batch) < page:
                return found

    def test_connection(self) -> tuple[bool, str]:
        """Called by the Airflow UI: fetch a token without touching any cache."""
        try:
            _, expires_in = self._fetch_token()
        except WeComError as exc:
            return False, str(exc)
        except Exception as exc:  # noqa: BLE001 - the UI shows the message; keep it secret-free
            return False, redact(f"{type(exc).__name__}: {exc}")
        return True, f"Connected to {self.settings.base_url}: token obtained (valid {expires_in} s)"

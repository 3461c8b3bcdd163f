"""WeComHook: a client for WeCom's server API that is correct under retries, limits and revocation."""

from __future__ import annotations

import json as jsonlib
import logging
import os
import random
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import requests
from airflow.sdk import BaseHook

from wecom import DEFAULT_BASE_URL
from wecom.errors import (
    TOKEN_ERRCODES,
    TRANSIENT_ERRCODES,
    WeComConfigError,
    WeComError,
    WeComItemError,
    WeComTransientError,
    error_for,
)
from wecom.redact import install_log_redaction, redact, register_secret
from wecom.token_store import (
    CachedToken,
    TokenStore,
    cache_key,
    memory_store,
    postgres_store,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WeComSettings:
    """Everything a hook needs from its connection; the secret is never part of ``repr``."""

    base_url: str
    corp_id: str
    secret: str = field(repr=False)
    agent_id: int | None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    proxy: str | None = None
    max_retries: int = 3
    retry_backoff: float = 0.5
    retry_backoff_max: float = 8.0
    token_margin: float = 300.0
    token_store: str = "postgres"
    warehouse_conn_id: str = "wecom_warehouse"
    pool_size: int = 8

    @classmethod
    def from_connection(cls, conn: Any) -> WeComSettings:
        # Form fields may arrive prefixed (extra__wecom__agent_id) from older UIs: accept both spellings.
        extra = {
            k.removeprefix("extra__wecom__"): v
            for k, v in (conn.extra_dejson or {}).items()
            if v not in (None, "")
        }
        conn_id = conn.conn_id
        if not conn.login:
            raise WeComConfigError(0, "", "connection", f"connection {conn_id!r} has no corp id in login")
        if not conn.password:
            raise WeComConfigError(
                0, "", "connection", f"connection {conn_id!r} has no app secret in password"
            )
        host = (conn.host or DEFAULT_BASE_URL).strip()
        if "://" not in host:
            scheme = conn.schema or "https"
            host = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        agent_id = extra.get("agent_id")
        try:
            agent = int(agent_id) if agent_id not in (None, "") else None
            numbers = {
                name: float(extra[name])
                for name in ("connect_timeout", "read_timeout", "retry_backoff", "token_margin")
                if name in extra
            }
            counts = {name: int(extra[name]) for name in ("max_retries", "pool_size") if name in extra}
        except (TypeError, ValueError) as exc:
            raise WeComConfigError(
                0, "", "connection", f"connection {conn_id!r} has a non-numeric extra: {exc}"
            ) from None
        store = str(extra.get("token_store", "postgres"))
        if store not in ("postgres", "memory"):
            raise WeComConfigError(
                0, "", "connection", f"token_store must be 'postgres' or 'memory', not {store!r}"
            )
        return cls(
            base_url=host.rstrip("/"),
            corp_id=conn.login,
            secret=conn.password,
            agent_id=agent,
            proxy=extra.get("proxy") or None,
            token_store=store,
            warehouse_conn_id=str(extra.get("warehouse_conn_id", "wecom_warehouse")),
            **numbers,
            **counts,
        )


@dataclass(frozen=True)
class SendResult:
    """What message/send says about who got a message."""

    msgid: str | None
    invalid_users: list[str]
    invalid_parties: list[str]
    invalid_tags: list[str]
    unlicensed_users: list[str]
    errcode: int = 0

    @property
    def all_invalid(self) -> bool:
        return self.errcode == 81013

    def to_dict(self) -> dict[str, Any]:
        return {
            "msgid": self.msgid,
            "invalid_users": self.invalid_users,
            "invalid_parties": self.invalid_parties,
            "invalid_tags": self.invalid_tags,
            "unlicensed_users": self.unlicensed_users,
            "errcode": self.errcode,
        }


def _describe(content: bytes) -> str:
    """What came back instead of a WeCom answer, without echoing it (it may carry anything)."""
    kind = "HTML page" if content[:64].lstrip().startswith(b"<") else "invalid or truncated JSON"
    return f"{kind}, {len(content)} bytes"


def interpret(status: int, content: bytes, path: str) -> dict[str, Any] | WeComTransientError:
    """A WeCom answer as a dict, or the transient error saying why it is not one (4xx: configuration)."""
    if status >= 500 or status == 429:
        return WeComTransientError(-1, f"HTTP {status} ({_describe(content)})", path)
    if status != 200:
        raise WeComConfigError(-1, f"HTTP {status}", path, "check the connection's host (the API base URL)")
    try:
        body = jsonlib.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return WeComTransientError(-1, f"non-JSON body ({_describe(content)})", path)
    if not isinstance(body, dict) or type(body.get("errcode", 0)) is not int:
        return WeComTransientError(-1, "JSON body is not a WeCom response object", path)
    return body


def _split(value: Any) -> list[str]:
    return [part for part in str(value or "").split("|") if part]


class WeComHook(BaseHook):
    """A client for one WeCom app (corp id + secret + agent id) named by an Airflow connection.

    The connection is read lazily: building the hook does no I/O.
    """

    conn_name_attr = "wecom_conn_id"
    default_conn_name = "wecom_default"
    conn_type = "wecom"
    hook_name = "WeCom"

    def __init__(
        self, wecom_conn_id: str = default_conn_name, *, token_store: TokenStore | None = None
    ) -> None:
        super().__init__()
        self.wecom_conn_id = wecom_conn_id
        self._explicit_store = token_store
        self._token: CachedToken | None = None

    @cached_property
    def settings(self) -> WeComSettings:
        settings = WeComSettings.from_connection(self.get_connection(self.wecom_conn_id))
        register_secret(settings.secret)
        install_log_redaction()
        return settings

    @cached_property
    def session(self) -> requests.Session:
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=2, pool_maxsize=self.settings.pool_size, max_retries=0
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        # Resolve the environment's proxy and CA settings once: with trust_env, requests re-reads
        # os.environ on every call (about 1 ms each with a large environment).
        if self.settings.proxy:
            session.proxies = {"http": self.settings.proxy, "https": self.settings.proxy}
        else:
            session.proxies = requests.utils.get_environ_proxies(self.settings.base_url)
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        session.trust_env = False
        return session

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
            raise WeComConfigError(
                0, "", "connection", f"connection {self.wecom_conn_id!r} needs agent_id in its extra"
            )
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
        body = self._request(
            "GET",
            "gettoken",
            params={"corpid": self.settings.corp_id, "corpsecret": self.settings.secret},
        )
        errcode = body.get("errcode", 0)
        if errcode != 0:
            raise error_for(errcode, body.get("errmsg", ""), "gettoken")
        token, expires_in = body.get("access_token"), body.get("expires_in", 7200)
        if not isinstance(token, str) or not token or not isinstance(expires_in, int):
            raise WeComTransientError(-1, "gettoken answered without a usable token", "gettoken")
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
    ) -> dict[str, Any]:
        """Call ``/cgi-bin/{path}`` with the token; return the body on errcode 0, raise otherwise.

        A token error (40014/42001/41001) drops the token only if it is still the cached one,
        refreshes and retries once; a second token error raises ``WeComTokenError``.
        """
        body: dict[str, Any] = {}
        for attempt in (1, 2):
            token = self.get_access_token()
            body = self._request(
                http_method, path, params={**(params or {}), "access_token": token}, json=json
            )
            errcode = body.get("errcode", 0)
            if errcode == 0:
                return body
            if errcode in TOKEN_ERRCODES and attempt == 1:
                log.warning("WeCom rejected the access token on %s (errcode %s); refreshing", path, errcode)
                self._invalidate(token)
                continue
            break
        raise error_for(body.get("errcode", -1), body.get("errmsg", ""), path)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any],
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One HTTP exchange with bounded, jittered retries for transient faults."""
        url = f"{self.settings.base_url}/cgi-bin/{path}"
        data = None
        headers = None
        if json is not None:
            # Serialised once: a retry sends the same bytes, which WeCom's duplicate check relies on.
            data = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json; charset=utf-8"}
        retries = self.settings.max_retries
        for attempt in range(retries + 1):
            problem = self._exchange(method, url, path, params, data, headers)
            if isinstance(problem, dict):
                errcode = problem.get("errcode", 0)
                if errcode not in TRANSIENT_ERRCODES:
                    return problem
                problem = error_for(errcode, problem.get("errmsg", ""), path)
            if attempt == retries:
                raise problem
            delay = random.uniform(
                0, min(self.settings.retry_backoff_max, self.settings.retry_backoff * 2**attempt)
            )
            log.warning("%s; retry %d/%d in %.2fs", problem, attempt + 1, retries, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _exchange(
        self,
        method: str,
        url: str,
        path: str,
        params: dict[str, Any],
        data: bytes | None,
        headers: dict[str, str] | None,
    ) -> dict[str, Any] | WeComTransientError:
        """The decoded body, or the transient error that describes why there is none."""
        session = self.session
        try:
            # Prepared here and sent with explicit settings: Session.request would merge cookies, hooks
            # and settings on every call (about half a millisecond each, per message).
            request = requests.PreparedRequest()
            request.prepare(method=method, url=url, params=params, data=data,
                            headers={**session.headers, **(headers or {})})  # fmt: skip
            response = session.send(
                request,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                proxies=session.proxies,
                verify=session.verify,
                allow_redirects=False,
            )
        except requests.Timeout:
            return WeComTransientError(-1, "timed out", path)
        except requests.RequestException as exc:
            # The exception text contains the URL (and so the token): keep only its kind.
            return WeComTransientError(-1, f"network error ({type(exc).__name__})", path)
        return interpret(response.status_code, response.content, path)

    # -- typed helpers ------------------------------------------------------------------------

    def list_departments(self, department_id: int | None = None) -> list[dict[str, Any]]:
        """The department and its descendants, or the whole visible tree."""
        params = {"id": department_id} if department_id is not None else None
        departments = self.call("GET", "department/list", params=params).get("department")
        if not isinstance(departments, list):
            raise WeComTransientError(
                -1, "department/list answered without a department list", "department/list"
            )
        return departments

    def list_department_members(self, department_id: int) -> list[dict[str, Any]]:
        """Members listed directly in one department (no ``fetch_child``: big orgs get 45029)."""
        body = self.call("GET", "user/list", params={"department_id": department_id})
        members = body.get("userlist")
        if not isinstance(members, list):
            raise WeComTransientError(-1, "user/list answered without a userlist", "user/list")
        return members

    def send_message(self, payload: dict[str, Any]) -> SendResult:
        """Send one application message; invalid recipients come back in the result, not as errors."""
        message = {"agentid": self.agent_id, **payload}
        try:
            body = self.call("POST", "message/send", json=message)
            errcode = 0
        except WeComItemError as exc:
            if exc.errcode != 81013:
                raise
            body = {
                "invaliduser": message.get("touser"),
                "invalidparty": message.get("toparty"),
                "invalidtag": message.get("totag"),
            }
            errcode = 81013
        return SendResult(
            msgid=body.get("msgid") or None,
            invalid_users=_split(body.get("invaliduser")),
            invalid_parties=_split(body.get("invalidparty")),
            invalid_tags=_split(body.get("invalidtag")),
            unlicensed_users=_split(body.get("unlicenseduser")),
            errcode=errcode,
        )

    def recall_message(self, msgid: str) -> None:
        """Recall a message sent within the last 24 hours."""
        self.call("POST", "message/recall", json={"msgid": msgid})

    def test_connection(self) -> tuple[bool, str]:
        """Called by the Airflow UI: fetch a token without touching any cache."""
        try:
            token, expires_in = self._fetch_token()
        except WeComError as exc:
            return False, str(exc)
        except Exception as exc:  # noqa: BLE001 - the UI shows the message; keep it secret-free
            return False, redact(f"{type(exc).__name__}: {exc}")
        return True, f"Connected to {self.settings.base_url}: token obtained (valid {expires_in} s)"

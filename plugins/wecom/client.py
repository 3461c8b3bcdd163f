"""The HTTP side both hooks share: a pooled session, a base hook whose connection gives its settings
(``wecom.connections``), and one exchange with bounded, jittered retries whose answer is read by
``errors.read_answer``."""

from __future__ import annotations

import logging
import os
import random
import time
from functools import cached_property
from typing import Any

import requests
from airflow.sdk import BaseHook

from wecom.connections import HttpSettings
from wecom.errors import Reaction, WeComTransientError, error_for, reaction, read_answer
from wecom.redact import install_log_redaction, register_secret

log = logging.getLogger(__name__)


def new_session(settings: HttpSettings) -> requests.Session:
    """A keep-alive session whose proxy and CA settings are resolved once, not on every call."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=2, pool_maxsize=settings.pool_size, max_retries=0
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # With trust_env, requests re-reads os.environ on every call (about 1 ms each with a large environment).
    if settings.proxy:
        session.proxies = {"http": settings.proxy, "https": settings.proxy}
    else:
        session.proxies = requests.utils.get_environ_proxies(settings.base_url)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False
    return session


def exchange(
    session: requests.Session,
    settings: HttpSettings,
    method: str,
    path: str,
    params: dict[str, Any],
    data: bytes | None = None,
    max_retries: int | None = None,
) -> dict[str, Any]:
    """A request to ``/cgi-bin/{path}`` and its WeCom body, with bounded, jittered retries of transient
    faults (``max_retries``, default the connection's; 0 for a call that must not be repeated blindly);
    other errcodes come back in the body for the caller to react to."""
    retries = settings.max_retries if max_retries is None else max_retries
    headers = dict(session.headers)
    if data is not None:
        headers["Content-Type"] = "application/json; charset=utf-8"
    # Prepared once (a retry sends the same bytes) and sent with explicit settings: Session.request would
    # merge cookies, hooks and settings on every call.
    request = requests.PreparedRequest()
    request.prepare(
        method=method, url=f"{settings.base_url}/cgi-bin/{path}", params=params, data=data, headers=headers
    )
    for attempt in range(retries + 1):
        try:
            body = _send(session, settings, request, path)
            errcode = body.get("errcode", 0)
            if reaction(errcode) is not Reaction.RETRY:
                return body
            problem = error_for(errcode, body.get("errmsg", ""), path)
        except WeComTransientError as exc:
            problem = exc
        if attempt == retries:
            raise problem
        delay = random.uniform(0, min(settings.retry_backoff_max, settings.retry_backoff * 2**attempt))
        log.warning("%s; retry %d/%d in %.2fs", problem, attempt + 1, retries, delay)
        time.sleep(delay)
    raise AssertionError("unreachable")


def _send(
    session: requests.Session, settings: HttpSettings, request: requests.PreparedRequest, path: str
) -> dict[str, Any]:
    try:
        response = session.send(
            request,
            timeout=(settings.connect_timeout, settings.read_timeout),
            proxies=session.proxies,
            verify=session.verify,
            allow_redirects=False,
        )
    except requests.Timeout:
        raise WeComTransientError.about(path, "timed out") from None
    except requests.RequestException as exc:
        # The exception text contains the URL (and so the credential): keep only its kind.
        raise WeComTransientError.about(path, f"network error ({type(exc).__name__})") from None
    return read_answer(response.status_code, response.content, path)


class BaseWeComHook(BaseHook):
    """A hook whose connection gives ``HttpSettings``: read once, lazily, its credential masked at once."""

    settings_class: type[HttpSettings]
    conn_name_attr: str

    @cached_property
    def settings(self) -> Any:
        settings = self.settings_class.from_connection(
            self.get_connection(getattr(self, self.conn_name_attr))
        )
        for secret in settings.credentials:
            register_secret(secret)
        install_log_redaction()
        return settings

    @cached_property
    def session(self) -> requests.Session:
        return new_session(self.settings)

    def get_conn(self) -> requests.Session:
        """The pooled HTTP session; the hook's methods add the credential and read WeCom's errcodes."""
        return self.session

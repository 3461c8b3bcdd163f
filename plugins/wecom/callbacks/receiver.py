"""The callback receiver: WeCom's URL verification (GET) and event delivery (POST) at ``/wecom/callback``.

It faces the internet, so every byte is hostile until proven WeCom's: the body is capped, the timestamp
must be recent (replays), the signature is checked in constant time before anything is decrypted, the
ReceiveId must be our corp, and XML is parsed with ``defusedxml`` (no DTDs, no entities). Anything else
gets a bare 4xx and a log line that carries neither the input nor a secret. A verified event is stored in
the inbox (``wecom.callback_events``) and committed before the 200; the receiver never calls WeCom and
never waits on Airflow. The statement that stores a new event also NOTIFYs, at its commit, the inbox
trigger that Airflow's triggerer runs (``wecom.triggers``), so the DAG that handles the event starts at once.

Served two ways: by Airflow's api-server through the plugin (``fastapi_apps``, prefix ``/wecom``), and as
its own small service, ``wecom-callback-receiver --host H --port P`` (uvicorn), for the usual case where
the api-server stays internal.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from psycopg.types.json import Jsonb
from starlette.concurrency import run_in_threadpool

from wecom import sql, warehouse
from wecom.callbacks.crypto import CallbackCrypto, CallbackRejected
from wecom.errors import SettingsError
from wecom.hooks import DEFAULT_CONN_ID, WeComHook

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # legitimate deliveries are a few KiB
INBOX = "callbacks/inbox.sql"


@dataclass(frozen=True)
class ReceiverSettings:
    crypto: CallbackCrypto
    warehouse_conn_id: str
    replay_window: float = 300.0  # seconds a timestamp may be from now; WeCom's retries fall inside it


def settings_from_connection(wecom_conn_id: str = DEFAULT_CONN_ID) -> ReceiverSettings:
    """The callback secrets from the WeCom connection: login = corp id, extra ``callback_token`` and
    ``callback_aes_key``; ``callback_replay_window`` optional."""
    settings = WeComHook(wecom_conn_id).settings  # registers the secrets with the masker
    crypto = CallbackCrypto.from_settings(
        settings.callback_token or "", settings.callback_aes_key or "", settings.corp_id
    )
    return ReceiverSettings(crypto, settings.warehouse_conn_id, settings.callback_replay_window)


class Inbox:
    """Stores verified events; one connection per thread (FastAPI runs sync endpoints in a pool)."""

    def __init__(self, warehouse_conn_id: str) -> None:
        self.warehouse_conn_id = warehouse_conn_id
        self._local = threading.local()

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = warehouse.connect_current(self.warehouse_conn_id)
        return conn

    def warm(self) -> None:
        """Connect (and migrate) before the first delivery, not during it."""
        self._conn()

    def store(self, message: bytes, fields: dict[str, Any]) -> bool:
        """True when new; a retried or duplicated delivery is stored once."""
        row = {
            "sha256": hashlib.sha256(message).hexdigest(),
            "event": fields.get("Event"),
            "change_type": fields.get("ChangeType"),
            "userid": fields.get("UserID") or fields.get("FromUserName"),
            "new_userid": fields.get("NewUserID"),
            "department_id": _int(fields.get("Id")),
            "created": _int(fields.get("CreateTime")),
            "payload": Jsonb(fields),
        }
        try:
            return self._conn().execute(sql.statements(INBOX)["store"], row).fetchone() is not None
        except Exception:
            self._local.conn = None  # a broken connection is not reused
            raise


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def parse_xml(data: bytes) -> dict[str, Any]:
    """A flat WeCom XML message as a dict (element name to text; nested elements as dicts or lists)."""
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, SyntaxError, ValueError):
        raise CallbackRejected("not well-formed XML, or XML with a DTD or entities") from None
    return _element(root)


def _element(node: Any) -> Any:
    children = list(node)
    if not children:
        return (node.text or "").strip()
    out: dict[str, Any] = {}
    for child in children:
        value = _element(child)
        if child.tag in out:  # repeated elements (OptionId, SelectedItem) become lists
            out[child.tag] = (
                [*out[child.tag], value] if isinstance(out[child.tag], list) else [out[child.tag], value]
            )
        else:
            out[child.tag] = value
    return out


class NotConfigured(SettingsError):
    """The WeCom connection or its callback secrets are missing or invalid; answered 503."""


class Receiver:
    """The checks and the storing, apart from the HTTP framework."""

    def __init__(self, settings: ReceiverSettings, inbox: Inbox | None = None) -> None:
        self.settings = settings
        self.inbox = inbox or Inbox(settings.warehouse_conn_id)

    def _fresh(self, timestamp: str) -> None:
        try:
            age = abs(time.time() - int(timestamp))
        except (TypeError, ValueError):
            raise CallbackRejected("timestamp is not a number") from None
        if age > self.settings.replay_window:
            raise CallbackRejected("timestamp outside the replay window")

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> bytes:
        self._fresh(timestamp)
        self.settings.crypto.verify(msg_signature, timestamp, nonce, echostr)
        return self.settings.crypto.decrypt(echostr)

    def receive(self, msg_signature: str, timestamp: str, nonce: str, body: bytes) -> bool:
        """Store one delivery; True when it was new."""
        self._fresh(timestamp)
        outer = parse_xml(body)
        encrypted = outer.get("Encrypt") if isinstance(outer, dict) else None
        if not isinstance(encrypted, str) or not encrypted:
            raise CallbackRejected("no Encrypt element")
        self.settings.crypto.verify(msg_signature, timestamp, nonce, encrypted)
        message = self.settings.crypto.decrypt(encrypted)
        fields = parse_xml(message)
        if not isinstance(fields, dict):
            raise CallbackRejected("the decrypted message is not a WeCom message")
        return self.inbox.store(message, fields)


def create_app(receiver: Receiver | None = None, wecom_conn_id: str = DEFAULT_CONN_ID) -> FastAPI:
    """The app, with routes under ``/callback``: mount it at ``/wecom``. WeCom wants the URL verification
    answered within a second: whoever serves the app readies it first (``app.state.receiver.warm()``)."""
    app = FastAPI(title="WeCom callback receiver", docs_url=None, redoc_url=None, openapi_url=None)
    state = _Lazy(receiver, wecom_conn_id)
    app.state.receiver = state

    @app.get("/callback")
    def verify_url(request: Request) -> Response:
        query = request.query_params
        try:
            plain = state.ready().verify_url(
                query.get("msg_signature", ""),
                query.get("timestamp", ""),
                query.get("nonce", ""),
                query.get("echostr", ""),
            )
        except CallbackRejected as exc:
            return _rejected("GET", exc)
        except NotConfigured:
            return Response(status_code=503)
        return PlainTextResponse(plain.decode("utf-8", "replace"))

    @app.post("/callback")
    async def receive(request: Request) -> Response:
        body = await _capped_body(request)
        if body is None:
            return _rejected("POST", CallbackRejected("body over the size cap"), status=413)
        query = request.query_params
        args = (query.get("msg_signature", ""), query.get("timestamp", ""), query.get("nonce", ""), body)
        try:
            await run_in_threadpool(lambda: state.ready().receive(*args))
        except CallbackRejected as exc:
            return _rejected("POST", exc)
        except NotConfigured:
            return Response(status_code=503)
        return Response(status_code=200)

    return app


class _Lazy:
    """Settings are read on the first request, not at import: the api-server loads plugins early."""

    def __init__(self, receiver: Receiver | None, wecom_conn_id: str) -> None:
        self._given = receiver
        self._conn_id = wecom_conn_id

    @cached_property
    def receiver(self) -> Receiver:
        return self._given or Receiver(settings_from_connection(self._conn_id))

    def ready(self) -> Receiver:
        """The receiver, or ``NotConfigured`` (a 503, and one log line saying what is missing)."""
        try:
            return self.receiver
        except Exception as exc:  # noqa: BLE001 - no connection, no callback secrets: say so, stay up
            log.error("The WeCom callback receiver is not configured: %s", exc)
            raise NotConfigured(
                "the WeCom connection or its callback secrets are missing or invalid"
            ) from None

    def warm(self) -> None:
        try:
            self.ready().inbox.warm()
        except NotConfigured:
            pass


async def _capped_body(request: Request) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _rejected(method: str, exc: CallbackRejected, status: int = 400) -> Response:
    log.warning("Rejected a %s to /wecom/callback: %s", method, exc.reason)
    return Response(status_code=status)


def application(wecom_conn_id: str = DEFAULT_CONN_ID) -> FastAPI:
    """The standalone service: the receiver at ``/wecom/callback`` and nothing else."""
    app = create_app(wecom_conn_id=wecom_conn_id)

    @contextlib.asynccontextmanager
    async def ready_first(_: FastAPI) -> Any:
        await run_in_threadpool(app.state.receiver.warm)
        yield

    root = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=ready_first)

    @root.get("/health")
    def health() -> Response:  # for the container's health check; not behind the public proxy
        return Response(status_code=200)

    root.mount("/wecom", app)
    return root


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="wecom-callback-receiver", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument(
        "--conn-id", default=DEFAULT_CONN_ID, help="the WeCom connection with the callback secrets"
    )
    args = parser.parse_args(argv)
    print(json.dumps({"listening": f"http://{args.host}:{args.port}/wecom/callback"}), flush=True)
    uvicorn.run(
        application(args.conn_id), host=args.host, port=args.port, log_level="warning", server_header=False
    )


if __name__ == "__main__":
    main()

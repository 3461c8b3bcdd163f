"""What each connection type takes: the settings a hook reads from its connection, and the connection form
Airflow shows for it, both from one declaration per extra (``knob``: type, default, label, description).

The provider (``wecom.provider``) builds the forms from these classes while Airflow starts up, before Airflow
can be imported: this module imports nothing of Airflow, and ``wecom.errors`` (which does) only when a
connection is read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Self

from wecom import DEFAULT_BASE_URL

_JSON_TYPES = {"float": "number", "int": "integer", "str": "string"}
TOKEN_STORES = ("postgres", "memory")


def knob(default: Any, label: str, description: str = "", *, secret: bool = False, **schema: Any) -> Any:
    """A settings field read from the connection's extra, and its form field: the label, the description and
    JSON-schema keys beyond the type and the default (``form_fields`` takes those from the field itself).
    A secret is kept out of ``repr`` and shown as a password."""
    if secret:
        schema["format"] = "password"
    form = {"label": label, "description": description, "schema": schema}
    return field(default=default, repr=not secret, metadata={"form": form})


def override(base: type, name: str, default: Any, description: str | None = None) -> Any:
    """A subclass's knob ``name`` with another default (and description), keeping the base's label."""
    (spec,) = (f for f in dataclasses.fields(base) if f.name == name)
    form = dict(spec.metadata["form"])
    if description is not None:
        form["description"] = description
    return field(default=default, repr=spec.repr, metadata={"form": form})


@dataclass(frozen=True, kw_only=True)
class HttpSettings:
    """Knobs every WeCom connection takes in its extra; each is one field of the connection type's form."""

    base_url: str
    connect_timeout: float = knob(5.0, "Connect timeout (s)")
    read_timeout: float = knob(30.0, "Read timeout (s)")
    proxy: str | None = knob(None, "Proxy URL", "HTTP(S) proxy for egress to WeCom (else the environment's).")
    max_retries: int = knob(3, "Retries", "Bounded retries of transient faults inside the hook.")
    retry_backoff: float = knob(0.5, "Retry backoff (s)", "First backoff; doubles, with jitter.")
    retry_backoff_max: float = knob(8.0, "Longest backoff (s)")
    pool_size: int = knob(8, "HTTP connections", "Keep-alive connections in the pool.")

    # Fields that do not come from the extra.
    NOT_EXTRAS = frozenset({"base_url", "corp_id", "secret", "key"})

    @property
    def credentials(self) -> tuple[str, ...]:
        """The secrets this connection holds (registered with the masker before any use)."""
        raise NotImplementedError

    @classmethod
    def from_connection(cls, conn: Any) -> Self:
        raise NotImplementedError

    @classmethod
    def extra_fields(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls) if f.name not in cls.NOT_EXTRAS}

    @classmethod
    def form_fields(cls) -> dict[str, dict[str, Any]]:
        """The connection type's form (a provider's ``conn-fields``): one field per extra, its label and
        description from ``knob``, its JSON type from the annotation, its default from the field."""
        fields = {}
        for name, spec in cls.extra_fields().items():
            if "form" not in spec.metadata:
                raise TypeError(f"{cls.__name__}.{name} has no form label: declare it with knob(...)")
            form = spec.metadata["form"]
            schema = {"type": [_JSON_TYPES[_kind(spec.type)], "null"], **form["schema"]}
            if spec.default is not None and spec.default is not dataclasses.MISSING:
                schema["default"] = spec.default
            fields[name] = {"label": form["label"], "description": form["description"], "schema": schema}
        return fields

    @classmethod
    def from_extra(cls, conn: Any, **values: Any) -> Self:
        """Settings from a connection's extra (typed by the fields; blank values mean the default)."""
        # Form fields may arrive prefixed (extra__wecom__agent_id) from older UIs: accept both spellings.
        extra = {
            key.split("__")[-1]: value
            for key, value in (conn.extra_dejson or {}).items()
            if value not in (None, "")
        }
        for name, spec in cls.extra_fields().items():
            if name in extra:
                values[name] = _typed(extra[name], spec.type, conn.conn_id, name)
        return cls(**values)


def _kind(annotation: Any) -> str:
    """``float``, ``int`` or ``str``: what a field holds (annotations are strings here)."""
    kind = str(annotation).split("|")[0].strip()
    return kind if kind in _JSON_TYPES else "str"


def _typed(value: Any, annotation: Any, conn_id: str, name: str) -> Any:
    kind = _kind(annotation)
    try:
        if kind == "float":
            return float(value)
        if kind == "int":
            return int(value)
    except (TypeError, ValueError):
        raise _settings_error(
            f"connection {conn_id!r}: extra {name} must be a number, not {value!r:.40}"
        ) from None
    return str(value)


def _settings_error(message: str) -> Exception:
    from wecom.errors import SettingsError  # imports Airflow: only when a connection is read

    return SettingsError(message)


@dataclass(frozen=True, kw_only=True)
class WeComSettings(HttpSettings):
    """An app connection (``wecom``): everything ``WeComHook`` needs; no secret is part of ``repr``."""

    corp_id: str
    secret: str = field(repr=False)
    agent_id: int | None = knob(None, "Agent ID", "The app's AgentId (required to send messages).")
    token_margin: float = knob(300.0, "Token margin (s)", "Refresh the token this long before it expires.")
    token_store: str = knob(
        "postgres",
        "Token cache",
        "postgres (shared by every worker, default) or memory (one process).",
        enum=[*TOKEN_STORES, None],
    )
    warehouse_conn_id: str = knob(
        "wecom_warehouse", "Warehouse connection", "Where the shared token cache lives."
    )
    calendar_organizer: str | None = knob(
        None,
        "Interview calendar organizer",
        "A member's userid: interviews go into a WeCom calendar the app creates, owned by this member"
        " (the app must be allowed to use 日程: README). Empty: no calendar.",
    )
    # The callback receiver's secrets (WeCom admin console → app → 接收消息 → API 接收).
    callback_token: str | None = knob(
        None,
        "Callback Token",
        "接收消息 → Token: the callback receiver checks signatures with it.",
        secret=True,
    )
    callback_aes_key: str | None = knob(
        None, "Callback EncodingAESKey", "接收消息 → EncodingAESKey (43 characters).", secret=True
    )
    callback_replay_window: float = knob(
        300.0, "Callback replay window (s)", "How far a callback's timestamp may be from now."
    )

    @classmethod
    def from_connection(cls, conn: Any) -> WeComSettings:
        if not conn.login:
            raise _settings_error(f"connection {conn.conn_id!r} has no corp id in login")
        if not conn.password:
            raise _settings_error(f"connection {conn.conn_id!r} has no app secret in password")
        host = (conn.host or DEFAULT_BASE_URL).strip()
        if "://" not in host:
            host = f"https://{host}"
        settings = cls.from_extra(conn, base_url=host.rstrip("/"), corp_id=conn.login, secret=conn.password)
        if settings.token_store not in TOKEN_STORES:
            raise _settings_error(
                f"connection {conn.conn_id!r}: token_store must be 'postgres' or 'memory',"
                f" not {settings.token_store!r}"
            )
        return settings

    @property
    def credentials(self) -> tuple[str, ...]:
        return tuple(s for s in (self.secret, self.callback_token, self.callback_aes_key) if s)


@dataclass(frozen=True, kw_only=True)
class WebhookSettings(HttpSettings):
    """A group robot connection (``wecom_webhook``): the key, and the HTTP knobs every connection takes."""

    key: str = field(repr=False)
    # A robot has no duplicate check: a retry after a lost answer may post twice, so retry less. It answers
    # in milliseconds, and an alert (a task's callback, the triggerer's deadline alert) should not hang long.
    max_retries: int = override(HttpSettings, "max_retries", 1, "A robot has no duplicate check.")
    read_timeout: float = override(HttpSettings, "read_timeout", 15.0)

    @classmethod
    def from_connection(cls, conn: Any) -> WebhookSettings:
        if not conn.password:
            raise _settings_error(f"connection {conn.conn_id!r} has no robot key in password")
        base_url = (conn.host or DEFAULT_BASE_URL).strip().rstrip("/")
        return cls.from_extra(conn, base_url=base_url, key=conn.password)

    @property
    def credentials(self) -> tuple[str, ...]:
        return (self.key,)

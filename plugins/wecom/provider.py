"""Provider registration: Airflow discovers the ``wecom`` and ``wecom_webhook`` connection types, their
form fields, the hooks, operator and notifiers through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from wecom import DEFAULT_BASE_URL, __version__


def _field(label: str, kind: str, description: str = "", **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": [kind, "null"], **schema}}


# Every extra a connection's hook reads, and only those (tests/test_dags_and_provider.py compares them).
HTTP_FIELDS = {
    "connect_timeout": _field("Connect timeout (s)", "number", default=5),
    "read_timeout": _field("Read timeout (s)", "number", default=30),
    "proxy": _field("Proxy URL", "string", "HTTP(S) proxy for egress to WeCom (else the environment's)."),
    "max_retries": _field(
        "Retries", "integer", "Bounded retries of transient faults inside the hook.", default=3
    ),
    "retry_backoff": _field(
        "Retry backoff (s)", "number", "First backoff; doubles, with jitter.", default=0.5
    ),
    "retry_backoff_max": _field("Longest backoff (s)", "number", default=8),
    "pool_size": _field("HTTP connections", "integer", "Keep-alive connections in the pool.", default=8),
}
WECOM_FIELDS = {
    "agent_id": _field("Agent ID", "integer", "The app's AgentId (required to send messages)."),
    **HTTP_FIELDS,
    "token_margin": _field(
        "Token margin (s)", "number", "Refresh the token this long before it expires.", default=300
    ),
    "token_store": _field(
        "Token cache",
        "string",
        "postgres (shared by every worker, default) or memory (one process).",
        enum=["postgres", "memory", None],
        default="postgres",
    ),
    "warehouse_conn_id": _field(
        "Warehouse connection", "string", "Where the shared token cache lives.", default="wecom_warehouse"
    ),
    "callback_token": _field(
        "Callback Token",
        "string",
        "接收消息 → Token: the callback receiver checks signatures with it.",
        format="password",
    ),
    "callback_aes_key": _field(
        "Callback EncodingAESKey", "string", "接收消息 → EncodingAESKey (43 characters).", format="password"
    ),
    "callback_replay_window": _field(
        "Callback replay window (s)", "number", "How far a callback's timestamp may be from now.", default=300
    ),
}

WECOM_CONNECTION = {
    "connection-type": "wecom",
    "hook-class-name": "wecom.hooks.WeComHook",
    "hook-name": "WeCom",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port"],
        "relabeling": {"host": "API base URL", "login": "Corp ID", "password": "App secret"},
        "placeholders": {
            "host": DEFAULT_BASE_URL,
            "login": "ww0123456789abcdef",
            "password": "the app's Secret (WeCom admin console → app → Secret)",
        },
    },
    "conn-fields": WECOM_FIELDS,
}
WEBHOOK_CONNECTION = {
    "connection-type": "wecom_webhook",
    "hook-class-name": "wecom.webhook.WeComWebhookHook",
    "hook-name": "WeCom group robot",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "login"],
        "relabeling": {"host": "API base URL", "password": "Robot key"},
        "placeholders": {"host": DEFAULT_BASE_URL, "password": "the key=... part of the webhook URL"},
    },
    "conn-fields": {
        **HTTP_FIELDS,
        "max_retries": _field("Retries", "integer", "A robot has no duplicate check.", default=1),
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "wecom-airflow",
        "name": "WeCom (企业微信)",
        "description": "WeCom for Apache Airflow: directory sync into PostgreSQL, application messages through a "
        "delivery ledger, group robots and failure alerts.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "WeCom",
                "external-doc-url": "https://developer.work.weixin.qq.com/document/path/90664",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "WeCom", "python-modules": ["wecom.hooks", "wecom.webhook"]}],
        "operators": [{"integration-name": "WeCom", "python-modules": ["wecom.operators"]}],
        "connection-types": [WECOM_CONNECTION, WEBHOOK_CONNECTION],
        "asset-uris": [
            {
                "schemes": ["wecom"],
                "handler": "wecom.lineage.sanitize_uri",
                "to_openlineage_converter": "wecom.lineage.to_openlineage",
            }
        ],
        "notifications": ["wecom.notifications.WeComNotifier", "wecom.notifications.WeComWebhookNotifier"],
    }

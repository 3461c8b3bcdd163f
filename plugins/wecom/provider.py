"""Provider registration: Airflow discovers the ``wecom`` and ``wecom_webhook`` connection types, their
form fields and the notifier through the ``apache_airflow_provider`` entry point of this distribution."""

from __future__ import annotations

from typing import Any

from wecom import DEFAULT_BASE_URL, __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "wecom-airflow",
        "name": "WeCom (企业微信)",
        "description": "WeCom for Apache Airflow: directory sync into PostgreSQL, application messages through a "
        "delivery ledger, group robots and failure alerts.",
        "versions": [__version__],
        "connection-types": [
            {
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
                "conn-fields": {
                    "agent_id": {
                        "label": "Agent ID",
                        "description": "The app's AgentId (required to send messages).",
                        "schema": {"type": ["integer", "null"]},
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (s)",
                        "schema": {"type": ["number", "null"], "default": 5},
                    },
                    "read_timeout": {
                        "label": "Read timeout (s)",
                        "schema": {"type": ["number", "null"], "default": 30},
                    },
                    "proxy": {
                        "label": "Proxy URL",
                        "description": "HTTP(S) proxy for egress to WeCom (optional).",
                        "schema": {"type": ["string", "null"]},
                    },
                    "token_store": {
                        "label": "Token cache",
                        "description": "postgres (shared by every worker, default) or memory (one process).",
                        "schema": {
                            "type": ["string", "null"],
                            "enum": ["postgres", "memory", None],
                            "default": "postgres",
                        },
                    },
                },
            },
            {
                "connection-type": "wecom_webhook",
                "hook-class-name": "wecom.webhook.WeComWebhookHook",
                "hook-name": "WeCom group robot",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login", "extra"],
                    "relabeling": {"host": "API base URL", "password": "Robot key"},
                    "placeholders": {
                        "host": DEFAULT_BASE_URL,
                        "password": "the key=... part of the webhook URL",
                    },
                },
            },
        ],
        "notifications": ["wecom.notifications.WeComNotifier"],
    }

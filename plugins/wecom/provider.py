"""Provider registration: Airflow discovers the ``wecom`` and ``wecom_webhook`` connection types, their
form fields, the hooks, operator and notifiers through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from wecom import DEFAULT_BASE_URL, __version__
from wecom.connections import WebhookSettings, WeComSettings

# The form fields ("conn-fields") come from the hooks' settings classes: labels, descriptions, types and defaults
# are declared once, on the fields the hooks read, so a form cannot offer an extra no hook reads, miss one, or
# show another default than the hook applies. (wecom.connections imports no Airflow: Airflow reads this
# module while it starts.)


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
    "conn-fields": WeComSettings.form_fields(),
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
    "conn-fields": WebhookSettings.form_fields(),
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

"""Keep credentials out of text: URLs carry the token (``access_token=``), the secret (``corpsecret=``)
and the robot key (``key=``) as query parameters, so every URL is a secret until redacted.
"""

from __future__ import annotations

import logging
import re
import threading

_SECRET_PARAMS = re.compile(r"((?:access_token|corpsecret|key)=)[^&\s\"'#]+", re.IGNORECASE)

_known_lock = threading.Lock()
_known: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret so ``redact`` replaces it anywhere, and tell Airflow's masker about it."""
    if not value or len(value) < 6:
        return
    with _known_lock:
        if value in _known:
            return
        _known.add(value)
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(value)
    except Exception:  # noqa: BLE001 - masking is best effort outside a task; redact() still applies
        pass


def redact(text: str) -> str:
    """Replace credential query values and every registered secret with ``***``."""
    text = _SECRET_PARAMS.sub(r"\1***", text)
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, "***")
    return text


class RedactingFilter(logging.Filter):
    """A log filter for loggers that print URLs (urllib3 at DEBUG prints every request line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is not ours to fix
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_installed = False


def install_log_redaction() -> None:
    """Attach the filter to the HTTP stack's loggers once per process."""
    global _installed
    if _installed:
        return
    for name in ("urllib3.connectionpool", "urllib3.util.retry", "requests"):
        logging.getLogger(name).addFilter(RedactingFilter())
    _installed = True

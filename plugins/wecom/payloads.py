"""Application-message payloads: built and validated against WeCom's limits before anything is sent, and
read back as their reader sees them (``reader_text``).

Limits are in UTF-8 bytes (a Chinese character is 3). Invalid content raises ``MessageError`` here, so
errcodes like 45002 or 44004 never reach WeCom. Bodies are built deterministically: the same input
gives the same bytes, which WeCom's duplicate check relies on to absorb a retry.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from wecom.errors import WeComDataError

TEXT_LIMIT = 2048
MARKDOWN_LIMIT = 2048
ROBOT_MARKDOWN_LIMIT = 4096
TEXTCARD_TITLE_LIMIT = 128
TEXTCARD_DESCRIPTION_LIMIT = 512
MAX_USERS, MAX_PARTIES, MAX_TAGS = 1000, 100, 100
MAX_DUPLICATE_CHECK_INTERVAL = 4 * 3600
TASK_ID = re.compile(r"[A-Za-z0-9_\-@]{1,128}")  # an answerable card's task_id


class MessageError(WeComDataError):
    """The message cannot be sent as given; the text says what to change."""


def byte_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _require(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MessageError(f"{what} is empty")
    return value


def _limit(value: str, what: str, limit: int) -> str:
    size = byte_len(value)
    if size > limit:
        raise MessageError(
            f"{what} is {size} bytes; WeCom allows {limit} (UTF-8 bytes, a CJK character is 3)"
        )
    return value


def plain(value: Any, limit: int) -> str:
    """One line of printable text within ``limit`` bytes (cut between characters, marked with …)."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in str(value or "")).split()) or "-"
    if len(text.encode()) <= limit:
        return text
    while len(text.encode()) > limit - len("…".encode()):
        text = text[:-1]
    return text + "…"


def text(content: str) -> dict[str, Any]:
    return {
        "msgtype": "text",
        "text": {"content": _limit(_require(content, "text content"), "text content", TEXT_LIMIT)},
    }


def markdown(content: str, limit: int = MARKDOWN_LIMIT) -> dict[str, Any]:
    content = _limit(_require(content, "markdown content"), "markdown content", limit)
    return {"msgtype": "markdown", "markdown": {"content": content}}


def textcard(title: str, description: str, url: str, btntxt: str | None = None) -> dict[str, Any]:
    card = {
        "title": _limit(_require(title, "textcard title"), "textcard title", TEXTCARD_TITLE_LIMIT),
        "description": _limit(
            _require(description, "textcard description"), "textcard description", TEXTCARD_DESCRIPTION_LIMIT
        ),
        "url": _require(url, "textcard url"),
    }
    if btntxt:
        card["btntxt"] = _limit(btntxt, "textcard btntxt", 12)
    return {"msgtype": "textcard", "textcard": card}


def news(articles: list[dict[str, str]]) -> dict[str, Any]:
    if not 1 <= len(articles) <= 8:
        raise MessageError(f"news takes 1 to 8 articles, not {len(articles)}")
    cleaned = []
    for index, article in enumerate(articles, 1):
        item = {
            "title": _limit(_require(article.get("title"), f"article {index} title"), "article title", 128)
        }
        for key in ("description", "url", "picurl"):
            if article.get(key):
                item[key] = _limit(
                    str(article[key]), f"article {index} {key}", 512 if key == "description" else 2048
                )
        cleaned.append(item)
    return {"msgtype": "news", "news": {"articles": cleaned}}


def text_notice_card(
    title: str,
    url: str,
    description: str = "",
    sub_title: str = "",
    fields: list[tuple[str, str]] | None = None,
    jumps: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """A template_card of type text_notice: a title, key/value rows and links, opening ``url``."""
    fields, jumps = fields or [], jumps or []
    if len(fields) > 6 or len(jumps) > 3:
        raise MessageError("a text_notice card takes at most 6 fields and 3 links")
    card: dict[str, Any] = {
        "card_type": "text_notice",
        "main_title": {"title": _limit(_require(title, "card title"), "card title", 128)},
        "card_action": {"type": 1, "url": _require(url, "card url")},
    }
    if description:
        card["main_title"]["desc"] = _limit(description, "card description", 512)
    if sub_title:
        card["sub_title_text"] = _limit(sub_title, "card sub_title_text", 512)
    if fields:
        card["horizontal_content_list"] = [
            {"keyname": k[:20], "value": _limit(v, f"card field {k}", 128)} for k, v in fields
        ]
    if jumps:
        card["jump_list"] = [{"type": 1, "title": t, "url": u} for t, u in jumps]
    return {"msgtype": "template_card", "template_card": card}


def task_id_for(key: str) -> str:
    """A card's ``task_id`` from a ledger key: WeCom allows 1-128 of letters, digits and ``_-@``, unique per
    app. The same key always gives the same id, so a retried send is still one card."""
    readable = re.sub(r"[^A-Za-z0-9_\-@]", "_", key)[:100]
    return f"{readable}_{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def button_card(
    title: str,
    task_id: str,
    buttons: list[tuple[str, str]],
    description: str = "",
    fields: list[tuple[str, str]] | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    """A template_card of type button_interaction: a title, key/value rows, and up to 6 buttons
    (``(text, key)``) whose taps come back as ``template_card_event`` callbacks carrying the key."""
    if not TASK_ID.fullmatch(task_id):
        raise MessageError(
            f"task_id {task_id!r:.140} must be 1-128 of letters, digits and _-@: use task_id_for"
        )
    if not 1 <= len(buttons) <= 6:
        raise MessageError("an answerable card takes 1 to 6 buttons")
    keys = [key for _, key in buttons]
    if len(set(keys)) != len(keys) or not all(keys):
        raise MessageError("button keys must be present and distinct")
    fields = fields or []
    if len(fields) > 6:
        raise MessageError("an answerable card takes at most 6 fields")
    card: dict[str, Any] = {
        "card_type": "button_interaction",
        "task_id": task_id,
        "main_title": {"title": _limit(_require(title, "card title"), "card title", 128)},
        "button_list": [
            {
                "text": _limit(_require(text, "button text"), "button text", 40),
                "style": 1 if n == 0 else 2,
                "key": _limit(key, "button key", 1024),
            }
            for n, (text, key) in enumerate(buttons)
        ],
    }
    if description:
        card["main_title"]["desc"] = _limit(description, "card description", 512)
    if fields:
        card["horizontal_content_list"] = [
            {"keyname": k[:20], "value": _limit(v, f"card field {k}", 128)} for k, v in fields
        ]
    if url:
        card["card_action"] = {"type": 1, "url": url}
    return {"msgtype": "template_card", "template_card": card}


def build(msgtype: str, **fields: Any) -> dict[str, Any]:
    """A payload by type name, for operators configured from templates."""
    builders = {
        "text": text,
        "markdown": markdown,
        "textcard": textcard,
        "news": news,
        "template_card": text_notice_card,
    }
    if msgtype not in builders:
        raise MessageError(f"msgtype must be one of {sorted(builders)}, not {msgtype!r}")
    return builders[msgtype](**fields)


def split_markdown(content: str, limit: int = MARKDOWN_LIMIT) -> list[str]:
    """Split at line boundaries into parts that fit ``limit`` bytes, numbered ``(1/3)`` when split.

    A line longer than a part is cut between characters, never inside one.
    """
    _require(content, "markdown content")
    if byte_len(content) <= limit:
        return [content]
    reserve = byte_len("(99/99)\n")
    budget = limit - reserve
    parts: list[str] = []
    current = ""
    for line in content.splitlines(keepends=True):
        for piece in _cut(line, budget):
            if current and byte_len(current) + byte_len(piece) > budget:
                parts.append(current)
                current = ""
            current += piece
    if current:
        parts.append(current)
    if len(parts) > 99:
        raise MessageError(f"markdown content needs {len(parts)} parts; shorten it")
    return [f"({i}/{len(parts)})\n{part.rstrip(chr(10))}" for i, part in enumerate(parts, 1)]


def _cut(line: str, budget: int) -> list[str]:
    if byte_len(line) <= budget:
        return [line]
    pieces, current, size = [], [], 0
    for char in line:
        width = byte_len(char)
        if size + width > budget:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    if current:
        pieces.append("".join(current))
    return pieces


@dataclass(frozen=True)
class Recipients:
    users: tuple[str, ...] = ()
    parties: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @classmethod
    def of(cls, users: Any = (), parties: Any = (), tags: Any = ()) -> Recipients:
        def norm(value: Any) -> tuple[str, ...]:
            if value is None or value == "":
                return ()
            if isinstance(value, str):
                value = value.replace(",", "|").split("|")
            return tuple(dict.fromkeys(str(v).strip() for v in value if str(v).strip()))

        recipients = cls(norm(users), norm(parties), norm(tags))
        if not (recipients.users or recipients.parties or recipients.tags):
            raise MessageError("no recipients: give at least one user, department or tag")
        return recipients

    def chunks(self) -> list[dict[str, str]]:
        """The recipient fields of each request, within WeCom's per-request limits."""

        def split(values: tuple[str, ...], size: int) -> list[tuple[str, ...]]:
            return [values[i : i + size] for i in range(0, len(values), size)]

        users, parties, tags = (
            split(self.users, MAX_USERS),
            split(self.parties, MAX_PARTIES),
            split(self.tags, MAX_TAGS),
        )
        out = []
        for index in range(max(len(users), len(parties), len(tags))):
            chunk = {}
            for name, groups in (("touser", users), ("toparty", parties), ("totag", tags)):
                if index < len(groups):
                    chunk[name] = "|".join(groups[index])
            out.append(chunk)
        return out


@dataclass(frozen=True)
class DuplicateCheck:
    """WeCom drops a byte-identical request inside the interval: it makes retries safe."""

    enabled: bool = True
    interval: int = 4 * 3600

    def fields(self) -> dict[str, Any]:
        if not self.enabled:
            return {"enable_duplicate_check": 0}
        return {
            "enable_duplicate_check": 1,
            "duplicate_check_interval": min(self.interval, MAX_DUPLICATE_CHECK_INTERVAL),
        }


def request_body(
    chunk: dict[str, str], payload: dict[str, Any], duplicate_check: DuplicateCheck
) -> dict[str, Any]:
    """Recipients + content + duplicate check, in a fixed key order (byte-identical on retry)."""
    return {**chunk, **payload, "safe": 0, **duplicate_check.fields()}


def reader_text(payload: dict[str, Any]) -> str:
    """A payload as its reader sees it: the text or markdown, a card's title and lines (for previews and the
    ledger's preview column)."""
    section = payload.get(payload.get("msgtype", ""), {})
    if payload.get("msgtype") == "template_card":
        title = section.get("main_title", {})
        rows = [f"{r.get('keyname')}: {r.get('value')}" for r in section.get("horizontal_content_list", [])]
        return "\n".join(filter(None, [title.get("title"), title.get("desc"), *rows]))
    if "content" in section:
        return str(section["content"])
    return json.dumps(section, ensure_ascii=False)

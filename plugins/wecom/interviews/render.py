"""Message templates (``include/templates``), rendered in Asia/Shanghai time with hostile text escaped."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import quote

import jinja2

from wecom.errors import WeComDataError
from wecom.files import TEMPLATES
from wecom.local import LOCAL_TZ

LANGUAGES = ("zh", "en")
# Characters that could start markup in WeCom markdown (or HTML) become harmless full-width look-alikes.
_MARKUP = str.maketrans({"*": "＊", "_": "＿", "[": "［", "]": "］", "(": "（", ")": "）", "`": "｀", "#": "＃",
                         "<": "＜", ">": "＞", "~": "～", "|": "｜", "\\": "＼"})  # fmt: skip


def md(value: Any) -> str:
    """Text safe inside markdown: no markup, no line breaks, no control characters."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(value or ""))
    return " ".join(text.split()).translate(_MARKUP)


def url(value: Any) -> str:
    """A link target that cannot break out of ``(...)``; only http(s) links are kept."""
    text = str(value or "").strip()
    if not text.lower().startswith(("http://", "https://")):
        return "#"
    return quote(text, safe=":/?&=#%+@,;~")


def local(value: datetime) -> datetime:
    return value.astimezone(LOCAL_TZ)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,  # markdown, not HTML: the md filter does the escaping
    )
    env.filters.update(
        md=md, url=url, hm=lambda t: local(t).strftime("%H:%M"), md_date=lambda t: local(t).strftime("%m-%d")
    )
    return env


def render(name: str, language: str, **values: Any) -> str:
    if language not in LANGUAGES:
        raise WeComDataError(f"language must be one of {LANGUAGES}, not {language!r}")
    return environment().get_template(f"{name}.{language}.md.j2").render(**values).strip()


@dataclass(frozen=True)
class Interview:
    interview_id: int
    position: str
    candidate_name: str
    starts_at: datetime
    ends_at: datetime
    room_url: str | None
    recruiter_id: int | None = None  # the platform user who organises it, if the platform names one

    @property
    def minutes(self) -> int:
        return int((self.ends_at - self.starts_at).total_seconds() // 60)

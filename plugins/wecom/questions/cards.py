"""What a question looks like in WeCom, decided without a database: the card each person gets, what its
buttons become once decided, and what a tap means.

A card carries the options as buttons when a tap can answer it: one choice among at most 6 options, each
fitting a button, and no param a person would have to fill in (the one the bridge fills, ``answer_param``,
aside). Otherwise it only links to the task's Required Actions page in Airflow. Text is plain: a subject or
body written by a DAG author (or templated from data) is cleaned and cut to the card's limits, never
markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wecom.airflow_api import TaskRef
from wecom.local import LOCAL_TZ
from wecom.payloads import (
    MessageError,
    button_card,
    byte_len,
    markdown,
    plain,
    task_id_for,
    text_notice_card,
)

BUTTON_KEY = "hitl:"  # + the option's index
MAX_BUTTONS = 6
BUTTON_BYTES = 40
ANSWER_PARAM = "answered_in_wecom_by"

_TEXT = {
    "zh": {
        "open": "在 Airflow 中回答",
        "dag": "DAG",
        "task": "任务",
        "run": "运行",
        "wecom": "已选择「{chosen}」· {by} · {at}",
        "airflow": "已在 Airflow 中选择「{chosen}」· {by} · {at}",
        "timeout": "已超时，按默认「{chosen}」· {at}",
        "task_ended": "已结束，未作答 · {at}",
        "link_only": "请在 Airflow 中回答（选项或参数较多）",
    },
    "en": {
        "open": "Answer in Airflow",
        "dag": "DAG",
        "task": "Task",
        "run": "Run",
        "wecom": "{chosen} · {by} · {at}",
        "airflow": "{chosen} in Airflow · {by} · {at}",
        "timeout": "Timed out: {chosen} (default) · {at}",
        "task_ended": "Ended unanswered · {at}",
        "link_only": "Answer in Airflow (options or params to fill in)",
    },
}


@dataclass(frozen=True)
class Question:
    """A human-in-the-loop task's question, as the notifier read it from the task."""

    task: TaskRef
    subject: str
    body: str
    options: tuple[str, ...]
    multiple: bool
    params: tuple[str, ...]
    ui_link: str | None
    language: str
    bridge_allowed: bool = True  # the bridge's Airflow account may answer (assigned, or nobody is)

    @property
    def answer_param(self) -> str | None:
        return ANSWER_PARAM if ANSWER_PARAM in self.params else None

    @property
    def answerable(self) -> bool:
        """True when a tap can answer it (else the card links to Airflow)."""
        return (
            self.bridge_allowed
            and not self.multiple
            and 1 <= len(self.options) <= MAX_BUTTONS
            and all(0 < byte_len(option) <= BUTTON_BYTES for option in self.options)
            and set(self.params) <= {ANSWER_PARAM}
        )

    @property
    def key(self) -> str:
        """The ledger key of its cards (one row per person asked)."""
        return f"hitl:{self.task.question_id}"

    def card_task_id(self, userid: str) -> str:
        return task_id_for(f"{self.key}:{userid}")

    def row(self) -> dict[str, Any]:
        t = self.task
        return {
            "question_id": t.question_id,
            "dag_id": t.dag_id,
            "run_id": t.run_id,
            "task_id": t.task_id,
            "map_index": t.map_index,
            "subject": self.subject,
            "options": list(self.options),
            "answerable": self.answerable,
            "answer_param": self.answer_param,
            "params": list(self.params),
            "ui_link": self.ui_link,
            "language": self.language,
        }


def card(question: Question, userid: str) -> dict[str, Any]:
    """The card ``userid`` gets: the options as buttons, or a link to Airflow's page."""
    text = _TEXT[question.language]
    title = plain(question.subject, 128)
    fields = [
        (text["dag"], plain(question.task.dag_id, 128)),
        (text["task"], plain(question.task.task_id, 128)),
    ]
    if question.answerable:
        buttons = [(option, f"{BUTTON_KEY}{n}") for n, option in enumerate(question.options)]
        return button_card(
            title,
            question.card_task_id(userid),
            buttons,
            description=plain(question.body, 512),
            fields=fields,
            url=_http(question.ui_link),
        )
    if not _http(question.ui_link):
        raise MessageError(
            f"the question of {question.task.question_id} needs Airflow's page (more than {MAX_BUTTONS} options,"
            " several to choose or params to fill in) and Airflow has no [api] base_url to link to: set it"
        )
    return text_notice_card(
        title,
        question.ui_link or "",
        description=plain(question.body, 512),
        sub_title=text["link_only"],
        fields=fields,
        jumps=[(text["open"], question.ui_link or "")],
    )


def fallback(question: Question) -> dict[str, Any]:
    """What goes out when WeCom refuses cards (the app has no callback URL): the question and the link."""
    text = _TEXT[question.language]
    lines = [f"## {plain(question.subject, 300)}", plain(question.body, 1500)]
    lines.append(" / ".join(plain(o, 60) for o in question.options))
    if _http(question.ui_link):
        lines.append(f"[{text['open']}]({question.ui_link})")
    return markdown("\n".join(lines))


def chosen_option(question_options: list[str], event_key: str | None) -> str | None:
    """The option a button stands for; None for a key no button of the card has."""
    key = event_key or ""
    if not key.startswith(BUTTON_KEY) or not key[len(BUTTON_KEY) :].isdigit():
        return None
    index = int(key[len(BUTTON_KEY) :])
    return question_options[index] if index < len(question_options) else None


def answer_params(
    params: list[str], answer_param: str | None, userid: str, tapped_at: datetime
) -> dict[str, Any]:
    """What the bridge answers for the declared params: all of them or none (Airflow fails the task on a
    subset). Only questions whose one declared param is ``ANSWER_PARAM`` are answerable by a tap."""
    if not answer_param:
        return {}
    return {answer_param: f"{userid} @ {tapped_at.isoformat(timespec='seconds')}"}


def decision_text(via: str, chosen: list[str] | None, by: str | None, at: datetime, language: str) -> str:
    """What the buttons become once decided: the choice, who and when (local time), within a button's text."""
    when = at.astimezone(LOCAL_TZ).strftime("%m-%d %H:%M")
    text = _TEXT[language][via].format(chosen=", ".join(chosen or []) or "-", by=by or "-", at=when)
    return plain(text, 120)


def _http(link: str | None) -> str | None:
    return link if link and link.lower().startswith(("http://", "https://")) else None

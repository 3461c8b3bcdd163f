"""The reminder as an answerable card: its buttons, and the text that replaces them once answered.

A card's ``task_id`` comes from the reminder's ledger key (``wecom.payloads.task_id_for``), so a retried
send is the same card and a click names exactly one reminder; once recorded (``wecom.reminder_cards``) it
never changes, even where the key's form did (migration 015). Card text is plain (no markup), so hostile
names are only cleaned and cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wecom.interviews.render import Interview, local, url
from wecom.payloads import button_card, plain

CONFIRM, DECLINE = "confirm", "decline"
CHOICES = {CONFIRM: "confirmed", DECLINE: "declined"}  # button key -> recorded choice
BUTTONS = {
    "zh": [("确认参加", CONFIRM), ("无法参加", DECLINE)],
    "en": [("Confirm", CONFIRM), ("Can't make it", DECLINE)],
}
_TEXT = {
    "zh": {
        "title": "面试提醒 {start} 开始",
        "desc": "{day} {start}–{end}，点击卡片进入面试间",
        "candidate": "候选人",
        "position": "岗位",
        "number": "面试编号",
        "confirmed": "已确认 {at}",
        "declined": "已告知无法参加",
    },
    "en": {
        "title": "Interview reminder: starts at {start}",
        "desc": "{day} {start}–{end}; tap to open the room",
        "candidate": "Candidate",
        "position": "Position",
        "number": "Interview no.",
        "confirmed": "Confirmed {at}",
        "declined": "Declined: organiser told",
    },
}


@dataclass(frozen=True)
class ReminderCard:
    """What a click needs to find its reminder, recorded before the card is sent."""

    task_id: str
    dedup_key: str
    userid: str
    interview: Interview
    recruiter_userid: str | None
    language: str

    def row(self) -> dict[str, Any]:
        i = self.interview
        return {
            "task_id": self.task_id,
            "dedup_key": self.dedup_key,
            "userid": self.userid,
            "interview_id": i.interview_id,
            "starts_at": i.starts_at,
            "position": i.position,
            "candidate_name": i.candidate_name,
            "recruiter_userid": self.recruiter_userid,
            "language": self.language,
        }


def reminder_card(task_id: str, interview: Interview, language: str) -> dict[str, Any]:
    """The reminder's ``button_interaction`` card: time, candidate, position, the room, two buttons."""
    text = _TEXT[language]
    hm = {
        "start": local(interview.starts_at).strftime("%H:%M"),
        "end": local(interview.ends_at).strftime("%H:%M"),
        "day": local(interview.starts_at).strftime("%m-%d"),
    }
    room = url(interview.room_url)
    return button_card(
        title=text["title"].format(**hm),
        task_id=task_id,
        buttons=BUTTONS[language],
        description=text["desc"].format(**hm),
        fields=[
            (text["candidate"], plain(interview.candidate_name, 120)),
            (text["position"], plain(interview.position, 120)),
            (text["number"], str(interview.interview_id)),
        ],
        url=room if room != "#" else None,
    )


def answer_text(choice: str, clicked_at: datetime, language: str) -> str:
    """What the buttons become for the interviewer once the answer is recorded."""
    return _TEXT[language][choice].format(at=local(clicked_at).strftime("%H:%M"))

"""The digest's optional approval: before the day's digests go out, an approver sees a preview in WeCom and
approves or rejects (``interview_daily_digest``, param ``require_approval``).

``DigestApproval`` is Airflow's ``ApprovalOperator`` whose timeout and timeout answer come from the run's
params (``approval_timeout_minutes``, ``on_approval_timeout``: send or skip), read when the task asks, so
they can be changed per run in the trigger form. ``preview_body`` is what the approver reads.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

ON_TIMEOUT = ("send", "skip")

_TEXT = {
    "zh": {
        "head": "{day} 的面试摘要：{messages} 条消息，发给 {people} 人。",
        "departments": "按部门：{counts}。",
        "sample": "示例（发给 {to}）：",
        "nothing": "今天没有要发的摘要。",
        "link": "完整预览（前 30 条）：{link}",
    },
    "en": {
        "head": "Digests for {day}: {messages} message(s) to {people} people.",
        "departments": "By department: {counts}.",
        "sample": "Sample (to {to}):",
        "nothing": "No digest to send today.",
        "link": "Full preview (first 30): {link}",
    },
}


def preview_body(
    day: date,
    recipients: list[str],
    per_department: list[tuple[str, int]],
    sample: tuple[str, str] | None,
    preview_link: str | None,
    language: str,
) -> str:
    """The approval's body: counts per department, one sample message and where the whole preview is."""
    text = _TEXT[language]
    if sample is None:
        return text["nothing"]
    lines = [
        text["head"].format(day=day.isoformat(), messages=len(recipients), people=len(set(recipients))),
        text["departments"].format(counts=", ".join(f"{name} {n}" for name, n in per_department[:8])),
        "",
        text["sample"].format(to=sample[0]),
        sample[1][:600],
    ]
    if preview_link:
        lines += ["", text["link"].format(link=preview_link)]
    return "\n".join(lines)


class DigestApproval(ApprovalOperator):
    """``ApprovalOperator`` with its timeout and what a timeout decides taken from the run's params."""

    def execute(self, context: Any) -> Any:
        params = context["params"]
        on_timeout = params.get("on_approval_timeout", "skip")
        if on_timeout not in ON_TIMEOUT:
            raise ValueError(f"on_approval_timeout must be one of {ON_TIMEOUT}, not {on_timeout!r}")
        self.defaults = [self.APPROVE if on_timeout == "send" else self.REJECT]
        self.response_timeout = timedelta(minutes=float(params.get("approval_timeout_minutes") or 120))
        return super().execute(context)

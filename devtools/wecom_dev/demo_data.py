"""Deterministic demo interviews, consistent with the simulator's org (same seed, same data).

Interviewers are members of the simulated org: most match by email, some only by mobile, a few not at
all (they show up as unmapped). Interviews fall on working days in Asia/Shanghai working hours, with
panels of one to three, cancellations, reschedules and missing feedback.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from wecom.interviews.render import LOCAL_TZ
from wecom_simulator.org import Org

POSITIONS = [
    "后端工程师",
    "前端工程师",
    "数据工程师",
    "测试开发工程师",
    "产品经理",
    "SRE",
    "Android 工程师",
    "算法工程师",
]
SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦许何吕施张孔曹严华金魏陶姜"
GIVEN = ["一鸣", "子涵", "欣怡", "浩然", "思远", "雨桐", "梓轩", "若曦", "俊杰", "嘉怡", "Alex", "Chris"]


@dataclass
class DemoData:
    users: list[tuple[Any, ...]] = field(default_factory=list)  # id, name, email, mobile
    interviews: list[tuple[Any, ...]] = field(
        default_factory=list
    )  # id, position, candidate, start, end, status, room, created, updated
    interviewers: list[tuple[int, int]] = field(default_factory=list)  # interview id, user id
    feedback: list[tuple[int, int, datetime]] = field(
        default_factory=list
    )  # interview id, user id, submitted


def generate(
    org: Org,
    *,
    first_day: date,
    days: int = 28,
    interviewers: int = 300,
    per_day: int = 150,
    now: datetime | None = None,
    seed: int = 1,
) -> DemoData:
    rng = random.Random(seed)
    now = now or datetime.now(LOCAL_TZ)
    data = DemoData()
    members = sorted(
        (u for u in org.users.values() if u.get("status") == 1), key=lambda u: u["userid"].lower()
    )
    chosen = rng.sample(members, k=min(interviewers, len(members)))
    for user_id, member in enumerate(chosen, 1):
        roll = rng.random()
        email, mobile = member.get("email"), None
        if roll < 0.05:  # known to the platform by mobile only
            email, mobile = None, member.get("mobile")
        elif roll < 0.08:  # a private address WeCom does not know: unmapped
            email = f"{member['userid'].lower()}@personal.example.net"
        data.users.append((user_id, member["name"], email, mobile))
    interview_id = 0
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        for _ in range(per_day):
            interview_id += 1
            start = datetime.combine(day, time(9), tzinfo=LOCAL_TZ) + timedelta(
                minutes=30 * rng.randrange(0, 18)
            )
            end = start + timedelta(minutes=rng.choice([45, 60, 60, 90]))
            created = start - timedelta(days=rng.randint(1, 10))
            updated = created
            if rng.random() < 0.05:  # rescheduled: moved, and the row says so
                start += timedelta(hours=rng.choice([1, 2, 24]))
                end = start + timedelta(minutes=60)
                updated = created + timedelta(hours=3)
            cancelled = rng.random() < 0.08
            status = "cancelled" if cancelled else ("finished" if end < now else "scheduled")
            candidate = rng.choice(SURNAMES) + rng.choice(GIVEN)
            room = f"https://www.showmebug.com/pads/{seed:02d}{interview_id:07d}"
            data.interviews.append((interview_id, rng.choice(POSITIONS), candidate, start, end, status, room,
                                    created, updated))  # fmt: skip
            panel = rng.sample(range(1, len(data.users) + 1), k=rng.choice([1, 1, 2, 2, 3]))
            for user_id in panel:
                data.interviewers.append((interview_id, user_id))
                if status == "finished" and rng.random() < 0.85:
                    data.feedback.append(
                        (interview_id, user_id, end + timedelta(minutes=rng.randint(5, 600)))
                    )
    return data


def load(conn: Any, data: DemoData) -> None:
    """Replace the platform tables' contents with the demo data (COPY, one transaction)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("TRUNCATE interview.feedbacks, interview.interview_interviewers, interview.interviews, "
                    "interview.users RESTART IDENTITY")  # fmt: skip
        copies = [
            ("interview.users (id, name, email, mobile)", data.users),
            ("interview.interviews (id, position, candidate_name, start_at, end_at, status, room_url, created_at, "
             "updated_at)", data.interviews),
            ("interview.interview_interviewers (interview_id, user_id)", data.interviewers),
            ("interview.feedbacks (interview_id, user_id, submitted_at)", data.feedback),
        ]  # fmt: skip
        for target, rows in copies:
            with cur.copy(f"COPY {target} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        for table in ("users", "interviews", "interview_interviewers", "feedbacks"):
            reset = f"SELECT setval('interview.{table}_id_seq', coalesce((SELECT max(id) FROM interview.{table}), 1))"  # noqa: S608 - fixed table names
            cur.execute(reset)

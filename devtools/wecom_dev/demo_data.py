"""Deterministic demo interviews, consistent with the simulator's org (same seed, same data).

Interviewers are members of the simulated org: most match by email, some only by mobile, a few not at
all (they show up as unmapped). Interviews fall on working days in Asia/Shanghai working hours, with
panels of one to three, cancellations, reschedules and missing feedback.

``by_day=True`` makes each day's interviews a function of the day alone (ids and times included), so data
generated again on another day agrees on the days both cover: the demo's kept database, whose pipeline
compares the platform's interviews with what it announced, sees no change that did not happen. Interviews
the demo adds while it runs (ids from ``LOOP_FIRST_ID``) are kept when ``load`` reloads the rest.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from wecom.interviews.render import LOCAL_TZ
from wecom_simulator.org import Org

LOOP_FIRST_ID = 9_000_001  # interviews the demo adds while it runs; below: generated ones
BY_DAY_EPOCH = date(2024, 1, 1)  # by_day ids count days from here
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
    by_day: bool = False,
) -> DemoData:
    if by_day and first_day < BY_DAY_EPOCH:
        raise ValueError(f"by_day numbers the days from {BY_DAY_EPOCH}")
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
        if by_day:  # the day's own random sequence and id range: the same whenever it is generated
            rng = random.Random(f"{seed}:{day.isoformat()}")
            interview_id = (day - BY_DAY_EPOCH).days * per_day
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


def load(conn: Any, data: DemoData, keep_from: int | None = None) -> None:
    """Replace the platform tables' contents with the demo data (COPY, one transaction). With
    ``keep_from``, interviews with an id from there on (and their panels) are kept as they are; those of
    them that ended are marked finished, as the platform would."""
    with conn.transaction(), conn.cursor() as cur:
        kept: list[tuple[Any, ...]] = []
        panels: list[tuple[Any, ...]] = []
        if keep_from is not None:
            kept = cur.execute(
                "SELECT id, position, candidate_name, start_at, end_at, CASE WHEN status = 'scheduled' AND"
                " end_at < now() THEN 'finished' ELSE status END, room_url, recruiter_id, created_at,"
                " updated_at FROM interview.interviews WHERE id >= %s ORDER BY id",
                (keep_from,),
            ).fetchall()
            panels = cur.execute(
                "SELECT interview_id, user_id FROM interview.interview_interviewers WHERE interview_id >= %s"
                " ORDER BY id",
                (keep_from,),
            ).fetchall()
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
        users = {row[0] for row in data.users}  # the same ones as before, unless the demo's org changed
        cur.executemany(
            "INSERT INTO interview.interviews (id, position, candidate_name, start_at, end_at, status, room_url,"
            " recruiter_id, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [(*row[:7], row[7] if row[7] in users else None, *row[8:]) for row in kept],
        )
        cur.executemany(
            "INSERT INTO interview.interview_interviewers (interview_id, user_id) VALUES (%s, %s)",
            [row for row in panels if row[1] in users],
        )
        for table in ("users", "interviews", "interview_interviewers", "feedbacks"):
            reset = f"SELECT setval('interview.{table}_id_seq', coalesce((SELECT max(id) FROM interview.{table}), 1))"  # noqa: S608 - fixed table names
            cur.execute(reset)

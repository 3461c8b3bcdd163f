"""The demo's two-way loop (``make demo``): two reminder cards tapped and answered, a member's move reaching
the directory through WeCom's callbacks, and the two interviews cancelled and moved on the platform, with
the corrected cards, the notices and the interviewers' WeCom calendars before and after."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from time import monotonic, sleep
from typing import Any

import psycopg

from wecom.interviews.render import LOCAL_TZ
from wecom_dev import demo_data
from wecom_dev.airflow_cli import WINDOW, dags_test
from wecom_simulator import SimulatorAdmin


@dataclass(frozen=True)
class Person:
    platform_user_id: int
    userid: str  # WeCom userid, lowercased as cards and calendars key it
    name: str

    def __str__(self) -> str:
        return f"{self.name} ({self.userid})"


@dataclass(frozen=True)
class Loop:
    """The two-way side, on two interviews this run adds for the next working day at 09:00 (ids from
    ``demo_data.LOOP_FIRST_ID``, kept by later runs as they left them): ``a`` confirms the first on its
    card, then it is cancelled; ``b`` declines the second, its recruiter is told and moves it to 15:00.
    Interviewers with no other interview that day, so their calendars for the day show just these."""

    day: date
    cancelled: int  # confirmed, then cancelled
    moved: int  # declined, then moved
    a: Person
    b: Person
    recruiter: Person

    @property
    def ids(self) -> tuple[int, int]:
        return (self.cancelled, self.moved)

    @property
    def moved_to(self) -> datetime:
        return datetime.combine(self.day, time(15), tzinfo=LOCAL_TZ)

    @classmethod
    def add(cls, db_url: str, day: date) -> Loop:
        start = datetime.combine(day, time(9), tzinfo=LOCAL_TZ)
        with psycopg.connect(db_url, autocommit=True) as conn, conn.transaction():
            free = conn.execute(
                "SELECT m.platform_user_id, lower(m.wecom_userid), u.name FROM wecom.user_mapping m"
                " JOIN wecom.users u ON lower(u.userid) = lower(m.wecom_userid) AND u.deleted_at IS NULL"
                " AND u.status = 1 WHERE m.matched_by = 'email' AND NOT EXISTS (SELECT 1 FROM"
                " interview.interview_interviewers p JOIN interview.interviews i ON i.id = p.interview_id"
                " WHERE p.user_id = m.platform_user_id"
                " AND (i.start_at AT TIME ZONE 'Asia/Shanghai')::date = %s)"
                " ORDER BY m.platform_user_id LIMIT 3",
                (day,),
            ).fetchall()
            if len(free) < 3:
                raise SystemExit(f"the demo found no three mapped interviewers free on {day}")
            a, b, recruiter = (Person(*row) for row in free)
            first_id = conn.execute(
                "SELECT greatest(coalesce(max(id) + 1, 0), %s) FROM interview.interviews WHERE id >= %s",
                (demo_data.LOOP_FIRST_ID, demo_data.LOOP_FIRST_ID),
            ).fetchone()[0]
            booked = datetime.now(LOCAL_TZ) - timedelta(days=3)
            for offset, (who, position, candidate) in enumerate(
                ((a, "后端工程师", "陈思远"), (b, "数据工程师", "林若曦"))
            ):
                interview_id = first_id + offset
                conn.execute(
                    "INSERT INTO interview.interviews (id, position, candidate_name, start_at, end_at,"
                    " status, room_url, recruiter_id, created_at, updated_at)"
                    " VALUES (%s, %s, %s, %s, %s, 'scheduled', %s, %s, %s, %s)",
                    (interview_id, position, candidate, start, start + timedelta(hours=1),
                     f"https://www.showmebug.com/pads/demo{interview_id}", recruiter.platform_user_id, booked,
                     booked),
                )  # fmt: skip
                conn.execute(
                    "INSERT INTO interview.interview_interviewers (interview_id, user_id) VALUES (%s, %s)",
                    (interview_id, who.platform_user_id),
                )
        return cls(day, first_id, first_id + 1, a, b, recruiter)

    def show(self, db_url: str, sim_url: str, env: dict[str, str], reminded_until: datetime) -> str:
        """Taps, answers, the contact change and the platform's changes, as they happen; returns the userid of
        the member the contact change moved."""
        admin = SimulatorAdmin(sim_url)
        with psycopg.connect(db_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT interview_id, task_id FROM wecom.reminder_cards WHERE interview_id = ANY(%s)",
                (list(self.ids),),
            ).fetchall()
            cards = dict(rows)
            if set(cards) != set(self.ids):
                raise SystemExit(
                    f"no reminder card went out for interviews {self.ids}: see wecom.message_log"
                )
            before = {p: self.calendar(admin, p) for p in (self.a, self.b)}
            shown = self.answer(conn, admin, env, cards)
            userid = self.contact_change(conn, admin, env)
            self.change(conn, admin, env, cards, shown, before, reminded_until)
        return userid

    def answer(self, conn: Any, admin: SimulatorAdmin, env: dict[str, str], cards: dict[int, str]) -> dict:
        """``a`` taps 确认参加 and ``b`` 无法参加; ``interview_answers`` records them and updates the cards."""
        print(
            f"\n--- 1. Two reminder cards answered (interviews {self.cancelled} and {self.moved},"
            f" {self.day:%m-%d} 09:00) ---"
        )
        admin.click(self.a.userid, cards[self.cancelled], "confirm")
        admin.click(self.b.userid, cards[self.moved], "decline")
        delivered(admin)
        print(
            f"{self.a} taps 确认参加 and {self.b} taps 无法参加 in WeCom; WeCom posts both taps to the callback"
            " receiver (wecom.callback_events)."
        )
        dags_test(env, "the answers", "interview_answers")
        tapped = {self.cancelled: "confirmed", self.moved: "declined"}
        shown = self.shown(admin, cards)
        for interview_id, interviewer, choice, clicked_at, card_status in conn.execute(
            "SELECT interview_id, interviewer, choice, clicked_at, card_status FROM wecom.reminder_status"
            " WHERE interview_id = ANY(%s) ORDER BY interview_id",
            (list(self.ids),),
        ).fetchall():
            if choice != tapped[interview_id]:
                raise SystemExit(
                    f"interview {interview_id}: {choice} recorded, {tapped[interview_id]} tapped"
                )
            print(
                f"  interview {interview_id}: {interviewer} answered {choice} at"
                f" {clicked_at.astimezone(LOCAL_TZ):%H:%M:%S} (wecom.reminder_status); the card now shows"
                f' "{shown[interview_id]}" ({card_status})'
            )
        notified_at, note = conn.execute(
            "SELECT notified_at, notify_note FROM wecom.reminder_declines WHERE interview_id = %s",
            (self.moved,),
        ).fetchone()
        if notified_at is None:
            raise SystemExit(f"the decline did not reach the recruiter {self.recruiter}: {note}")
        print(
            f"  the decline reached the recruiter {self.recruiter} at"
            f" {notified_at.astimezone(LOCAL_TZ):%H:%M:%S} (wecom.reminder_declines)"
        )
        return shown

    def contact_change(self, conn: Any, admin: SimulatorAdmin, env: dict[str, str]) -> str:
        """A member moves department in WeCom; the callbacks and ``wecom_directory_events`` bring it in."""
        print("\n--- 2. A contact change reaching the directory ---")
        userid, department = transfer(admin)
        delivered(admin)
        was = directory_row(conn, userid)
        print(
            f"WeCom: {was[1]} ({userid}) moves to {department} as 招聘经理; WeCom posts"
            " change_contact/update_user to the callback receiver."
        )
        dags_test(env, "the directory events", "wecom_directory_events")
        now = directory_row(conn, userid)
        if now[2:4] != ("招聘经理", department):
            raise SystemExit(f"the move did not reach wecom.users: {now}")
        print(
            f"  wecom.users: {userid} {now[1]}, {now[2]}, {now[3]} (was {was[2]}, {was[3]}): callback"
            f" received {now[4].astimezone(LOCAL_TZ):%H:%M:%S}, applied {now[5].astimezone(LOCAL_TZ):%H:%M:%S} by"
            f" {now[7]} sync run {now[6]} (wecom.sync_runs)"
        )
        return userid

    def change(
        self,
        conn: Any,
        admin: SimulatorAdmin,
        env: dict[str, str],
        cards: dict[int, str],
        shown: dict[int, str],
        before: dict[Person, str],
        reminded_until: datetime,
    ) -> None:
        """The platform cancels one interview and moves the other; the next reminders run announces it."""
        print("\n--- 3. The platform cancels one interview and moves the other ---")
        conn.execute(
            "UPDATE interview.interviews SET status = 'cancelled', updated_at = now() WHERE id = %s",
            (self.cancelled,),
        )
        conn.execute(
            "UPDATE interview.interviews SET start_at = %s, end_at = %s, updated_at = now() WHERE id = %s",
            (self.moved_to, self.moved_to + timedelta(hours=1), self.moved),
        )
        print(
            f"UPDATE interview.interviews: {self.cancelled} cancelled, {self.moved} moved to"
            f" {self.moved_to:%m-%d %H:%M}."
        )
        until = reminded_until + WINDOW
        label = f"the next reminders window, {reminded_until:%H:%M}-{until:%H:%M}"
        dags_test(env, label, "interview_reminders", until.isoformat())
        now_shown = self.shown(admin, cards)
        for interview_id, person in ((self.cancelled, self.a), (self.moved, self.b)):
            change = f'"{shown[interview_id]}" -> "{now_shown[interview_id]}"'
            print(f"  {person}'s card for {interview_id}: {change}")
        for interview_id, changes, interviewer, notice, told_at in conn.execute(
            "SELECT interview_id, changes, interviewer, notice, told_at FROM wecom.interview_changes"
            " WHERE interview_id = ANY(%s) ORDER BY interview_id, version, interviewer",
            (list(self.ids),),
        ).fetchall():
            when = f" at {told_at.astimezone(LOCAL_TZ):%H:%M:%S}" if told_at else ""
            print(
                f"  notice of {interview_id} {'/'.join(changes)} to {interviewer}: {notice}{when}"
                f' "{self.notice_title(admin, interviewer)}" (wecom.interview_changes)'
            )
        for person in (self.a, self.b):
            print(
                f"  {person}'s WeCom calendar for {self.day:%m-%d} (SimulatorAdmin.calendar): before"
                f" {before[person] or '(nothing)'}; after {self.calendar(admin, person) or '(nothing)'}"
            )

    @staticmethod
    def shown(admin: SimulatorAdmin, cards: dict[int, str]) -> dict[int, str]:
        """What the interviewer sees where the card's buttons were (the buttons themselves: 确认参加 / 无法参加)."""
        by_task = {c["task_id"]: c for c in admin.cards()}
        seen = {}
        for interview_id, task_id in cards.items():
            text = next(iter(by_task[task_id]["shown"].values()))
            seen[interview_id] = text if text is not None else "确认参加 / 无法参加"
        return seen

    def calendar(self, admin: SimulatorAdmin, person: Person) -> str:
        entries = [
            f"{s['start'][11:16]}-{s['end'][11:16]} {s['summary']}"
            for s in sorted(admin.calendar(person.userid), key=lambda s: s["start_time"])
            if s["start"][:10] == self.day.isoformat()
        ]
        return "; ".join(entries)

    @staticmethod
    def notice_title(admin: SimulatorAdmin, userid: str) -> str:
        """The heading of the last markdown message ``userid`` received (the notice), without its markup."""
        for message in reversed(admin.messages(userid)):
            if message["msgtype"] == "markdown" and message["content"]:
                return re.sub(r"<[^>]*>", "", message["content"].splitlines()[0]).lstrip("# ")
        return ""


def transfer(admin: SimulatorAdmin) -> tuple[str, str]:
    """In WeCom's admin console, a member (the first, by userid, who leads no department and is not in the
    recruiting department) moves to the recruiting department as 招聘经理. Returns the userid and the
    department's name."""
    org = admin.org()
    departments = {d["id"]: d for d in org["departments"]}
    recruiting = next((d for d in departments.values() if "招聘" in d["name"]), departments[1])
    member = min(
        (u for u in org["users"] if u["status"] == 1 and not any(u["is_leader_in_dept"])
         and recruiting["id"] not in u["department"]),
        key=lambda u: u["userid"].lower(),
    )  # fmt: skip
    admin.mutate(
        {"op": "move_user", "userid": member["userid"], "departments": [recruiting["id"]]},
        {"op": "update_user", "userid": member["userid"], "fields": {"position": "招聘经理"}},
    )
    return member["userid"], recruiting["name"]


def directory_row(conn: Any, userid: str) -> tuple[Any, ...]:
    """The member in wecom.users: userid, name, position, main department's name, and when the newest
    contact callback about them was received and applied, by which sync run (id, kind)."""
    return conn.execute(
        "SELECT u.userid, u.name, u.position, d.name, e.received_at, e.processed_at, s.sync_run_id, s.kind"
        " FROM wecom.users u LEFT JOIN wecom.departments d ON d.department_id = u.main_department"
        " LEFT JOIN LATERAL (SELECT received_at, processed_at FROM wecom.callback_events"
        "  WHERE event = 'change_contact' AND lower(userid) = lower(u.userid)"
        "  ORDER BY event_id DESC LIMIT 1) e ON true"
        " LEFT JOIN wecom.sync_runs s ON s.sync_run_id = u.version_sync_run_id"
        " WHERE lower(u.userid) = lower(%s) AND u.deleted_at IS NULL",
        (userid,),
    ).fetchone()


def delivered(admin: SimulatorAdmin, timeout: float = 30) -> None:
    """Wait until WeCom (the simulator) has posted every callback and the receiver acknowledged it."""
    deadline = monotonic() + timeout
    while not (state := admin.callbacks())["idle"]:
        if monotonic() > deadline:
            raise SystemExit(f"the callbacks were not delivered in {timeout:.0f} s: {state}")
        sleep(0.05)
    if state.get("given_up"):
        raise SystemExit("the receiver refused callbacks (see receiver.log in the demo directory, .demo)")

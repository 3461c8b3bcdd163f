"""The reminder and digest queries at 10k and at 1M interviews: index-backed means flat.

    .venv/bin/python bench/reminder_scan.py

The platform's history grows with time, not its days: both sizes keep the same density (100 interviews a
working day), so each query's result is the same size and only an index keeps its time flat. Prints the
median time per query at each size, the ratio (goal: under 2x for 100x the data) and the plans at 1M.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timedelta

import psycopg

from wecom import sql
from wecom.interviews.render import LOCAL_TZ
from wecom_dev.environment import scratch_database
from wecom_dev.platform import create_platform_schema

PER_DAY = 100
QUERIES = "interview/queries.sql"

FILL = [
    "TRUNCATE interview.feedbacks, interview.interview_interviewers, interview.interviews, interview.users"
    " RESTART IDENTITY",
    "INSERT INTO interview.users (name, email) SELECT 'interviewer ' || g, 'u' || g || '@example.com'"
    " FROM generate_series(1, 5000) g",
    """INSERT INTO interview.interviews (position, candidate_name, start_at, end_at, status, room_url)
    SELECT 'SRE', 'candidate ' || g, t, t + interval '1 hour',
           CASE WHEN mod(g, 13) = 0 THEN 'cancelled' WHEN t < %(now)s THEN 'finished' ELSE 'scheduled' END,
           'https://example.com/' || g
    FROM (SELECT g, %(last)s::timestamptz - (g / %(per_day)s) * interval '1 day'
                 + (mod(g, %(per_day)s) * 5) * interval '1 minute' AS t
          FROM generate_series(1, %(n)s) g) s""",
    "INSERT INTO interview.interview_interviewers (interview_id, user_id)"
    " SELECT id, 1 + mod(id, 5000) FROM interview.interviews",
    "INSERT INTO interview.interview_interviewers (interview_id, user_id)"
    " SELECT id, 1 + mod(id * 7, 5000) FROM interview.interviews WHERE mod(id, 3) = 0 AND mod(id * 7, 5000) <> mod(id, 5000)",
    "INSERT INTO interview.feedbacks (interview_id, user_id)"
    " SELECT interview_id, user_id FROM interview.interview_interviewers WHERE mod(interview_id, 5) <> 0",
    "ANALYZE interview.interviews",
    "ANALYZE interview.interview_interviewers",
    "ANALYZE interview.feedbacks",
]


def measure(conn: psycopg.Connection, now: datetime) -> tuple[dict[str, float], dict[str, str]]:
    statements = sql.statements(QUERIES)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    cases = {
        "due_reminders": {"window_start": now, "window_end": now + timedelta(minutes=10), "lead_minutes": 30},
        "day_interviews": {"day_start": day_start, "day_end": day_start + timedelta(days=1)},
        "owed_feedback": {"since": now - timedelta(days=7), "until": now - timedelta(hours=2)},
    }
    timings, plans = {}, {}
    for name, params in cases.items():
        samples = []
        for _ in range(15):
            started = time.perf_counter()
            conn.execute(statements[name], params).fetchall()
            samples.append(time.perf_counter() - started)
        timings[name] = statistics.median(samples)
        plans[name] = "\n".join(r[0] for r in conn.execute("EXPLAIN " + statements[name], params).fetchall())
    return timings, plans


def main() -> None:
    now = datetime(2026, 12, 1, 10, 0, tzinfo=LOCAL_TZ)
    results = {}
    with scratch_database() as db_url, psycopg.connect(db_url, autocommit=True) as conn:
        create_platform_schema(conn)
        for n in (10_000, 1_000_000):
            started = time.perf_counter()
            for statement in FILL:
                conn.execute(
                    statement,
                    {"now": now, "last": now + timedelta(days=30), "n": n, "per_day": PER_DAY}
                    if "%(" in statement
                    else None,
                )
            print(f"{n:>9,} interviews generated in {time.perf_counter() - started:.1f}s", flush=True)
            results[n] = measure(conn, now)
    small, large = results[10_000][0], results[1_000_000][0]
    print(f"\n{'query':<16}{'10k (ms)':>10}{'1M (ms)':>10}{'ratio':>8}   (goal: under 2x)")
    for name in small:
        print(
            f"{name:<16}{small[name] * 1000:>10.2f}{large[name] * 1000:>10.2f}{large[name] / small[name]:>8.2f}"
        )
    for name, plan in results[1_000_000][1].items():
        print(f"\n-- plan at 1M: {name}\n{plan}")


if __name__ == "__main__":
    main()

"""Answerable reminders, measured in one run: from a tap to the card showing the answer, and our own work
per tap against the floor (the ``update_template_card`` calls alone).

    .venv/bin/python bench/answers.py --cards 300 --latency-ms 30

An org synced in full, ``--cards`` interviews due in one reminder window, their cards sent; the simulator
posts taps as WeCom does (sealed callbacks to ``wecom-callback-receiver`` in its own process), with
``--latency-ms`` on every API call (WeCom's round trip from a server in China is tens of ms).

1. Latency: ``--taps`` taps one at a time, each followed by what a woken ``interview_answers`` run does
   (``apply_answers``): p50/p99 from the tap to the card showing the answer. Airflow's own scheduling
   after a wake-up (a few seconds, in ``make e2e``) is not in this figure.
2. Throughput: the remaining cards tapped at once (a tenth 无法参加), then one run: its time against
   the floor of the same number of bare ``update_template_card`` calls over one keep-alive connection;
   own work per tap = (run - floor) / taps; API calls per tap.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime, timedelta

import psycopg
import requests

from wecom.directory import tasks as directory
from wecom.interviews import tasks
from wecom.interviews.render import LOCAL_TZ
from wecom.outbox import Claimant
from wecom_dev.days import weekday_ahead
from wecom_dev.environment import callback_receiver, org_args, scratch_database, simulator_process
from wecom_dev.platform import create_platform_schema
from wecom_simulator import SimulatorAdmin, SimulatorConfig

TOKEN, AES_KEY = "benchAnswersToken01", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
DAY = weekday_ahead(1)
START = datetime(DAY.year, DAY.month, DAY.day, 10, 0, tzinfo=LOCAL_TZ)


def seed(db_url: str, sim: SimulatorAdmin, cards: int) -> None:
    """``cards`` interviews at 10:00, one interviewer each, all mapped by email."""
    users = [u for u in sim.org()["users"] if u.get("email")][:cards]
    with psycopg.connect(db_url, autocommit=True) as conn:
        create_platform_schema(conn)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO interview.users (id, name, email) VALUES (%s, %s, %s)",
                            [(n, u["name"], u["email"]) for n, u in enumerate(users, 1)])  # fmt: skip
            cur.executemany(
                "INSERT INTO interview.interviews (id, position, candidate_name, start_at, end_at, status)"
                " VALUES (%s, '后端工程师', %s, %s, %s, 'scheduled')",
                [(n, f"候选人{n}", START, START + timedelta(hours=1)) for n in range(1, len(users) + 1)],
            )
            cur.executemany("INSERT INTO interview.interview_interviewers (interview_id, user_id) VALUES (%s, %s)",
                            [(n, n) for n in range(1, len(users) + 1)])  # fmt: skip


def wait_idle(sim: SimulatorAdmin) -> None:
    while not sim.callbacks()["idle"]:
        time.sleep(0.002)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--cards", type=int, default=300)
    parser.add_argument("--taps", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=30)
    args = parser.parse_args()
    with scratch_database() as db_url, simulator_process(*org_args(args.users, 100)) as sim_url:
        with callback_receiver(sim_url, db_url, callback_token=TOKEN, callback_aes_key=AES_KEY) as url:
            run(args, url, db_url, sim_url)


def run(args: argparse.Namespace, url: str, db_url: str, sim_url: str) -> None:
    sim = SimulatorAdmin(sim_url)
    sim.send_callbacks(url, TOKEN, AES_KEY)
    directory.migrate()
    directory.apply(directory.fetch()["snapshot_id"])
    seed(db_url, sim, args.cards)
    window = START - timedelta(minutes=33)
    sent = tasks.send_reminders(window, window + timedelta(minutes=10), Claimant("bench", "send", "send"))
    with psycopg.connect(db_url) as conn:
        cards = conn.execute("SELECT task_id, userid FROM wecom.reminder_cards ORDER BY task_id").fetchall()
    sim.latency(args.latency_ms)

    def shown(task_id: str) -> str | None:
        return next(c for c in sim.cards() if c["task_id"] == task_id)["shown"][userid_of[task_id]]

    userid_of = dict(cards)
    latencies = []
    for n, (task_id, userid) in enumerate(cards[: args.taps]):
        started = time.perf_counter()
        sim.click(userid, task_id, "confirm")
        wait_idle(sim)
        tasks.apply_answers(Claimant("bench", f"tap-{n}", "apply_answers"))
        latencies.append(time.perf_counter() - started)
        assert shown(task_id) is not None
    latencies.sort()

    rest = cards[args.taps :]
    for n, (task_id, userid) in enumerate(rest):
        sim.click(userid, task_id, "decline" if n % 10 == 0 else "confirm")
    wait_idle(sim)
    before = dict(sim.stats()["calls"])
    started = time.perf_counter()
    result = tasks.apply_answers(Claimant("bench", "batch", "apply_answers"))
    batch_s = time.perf_counter() - started
    calls = {k: v - before.get(k, 0) for k, v in sim.stats()["calls"].items() if v - before.get(k, 0)}
    assert result.get("cards_updated") == len(rest), result

    # The floor: the same number of bare update calls (fresh codes from new cards), one connection.
    session = requests.Session()
    token = session.get(f"{sim_url}/cgi-bin/gettoken", params={"corpid": SimulatorConfig().corp_id,
                        "corpsecret": SimulatorConfig().secret}, timeout=10).json()["access_token"]  # fmt: skip
    codes = []
    for n, (_, userid) in enumerate(rest):
        card = {"card_type": "button_interaction", "task_id": f"floor{n}", "main_title": {"title": "floor"},
                "button_list": [{"text": "ok", "key": "ok"}]}  # fmt: skip
        body = {"touser": userid, "msgtype": "template_card", "agentid": SimulatorConfig().agent_id,
                "template_card": card}  # fmt: skip
        codes.append((session.post(f"{sim_url}/cgi-bin/message/send", params={"access_token": token},
                                   json=body, timeout=10).json()["response_code"], userid))  # fmt: skip
    started = time.perf_counter()
    for code, userid in codes:
        body = {"userids": [userid], "agentid": SimulatorConfig().agent_id, "response_code": code,
                "button": {"replace_name": "已确认"}}  # fmt: skip
        assert session.post(f"{sim_url}/cgi-bin/message/update_template_card", params={"access_token": token},
                            json=body, timeout=10).json()["errcode"] == 0  # fmt: skip
    floor_s = time.perf_counter() - started

    p50, p99 = statistics.median(latencies), latencies[max(0, int(len(latencies) * 0.99) - 1)]
    own_ms = (batch_s - floor_s) / len(rest) * 1000
    print(
        f"{len(cards)} reminder cards sent ({sent['sent']} by message/send), WeCom latency {args.latency_ms} ms:"
    )
    print(f"  tap -> card shows the answer, one tap per run ({len(latencies)} taps): p50 {p50 * 1000:.0f} ms, "
          f"p99 {p99 * 1000:.0f} ms (receiver, inbox, answers run; Airflow's wake-up not included)")  # fmt: skip
    print(f"  {len(rest)} taps in one run: {batch_s:.2f} s; floor ({len(rest)} bare update_template_card calls) "
          f"{floor_s:.2f} s: {batch_s / floor_s:.2f}x the floor; own work {own_ms:.1f} ms per tap")  # fmt: skip
    print(f"  API calls in that run: {calls} ({sum(calls.values()) / len(rest):.2f} per tap; declines "
          f"{result.get('decline_messages_sent', 0)} messages)")  # fmt: skip
    print(json.dumps({"tap_to_card_p50_ms": round(p50 * 1000, 1), "tap_to_card_p99_ms": round(p99 * 1000, 1),
                      "batch_taps": len(rest), "batch_s": round(batch_s, 2), "floor_s": round(floor_s, 2),
                      "vs_floor": round(batch_s / floor_s, 2), "own_ms_per_tap": round(own_ms, 1),
                      "api_calls_per_tap": round(sum(calls.values()) / len(rest), 2)}))  # fmt: skip


if __name__ == "__main__":
    main()

"""Sending, measured side by side in one run against the simulator.

    .venv/bin/python bench/send.py [--messages 5000]

1. messages/s through one pooled keep-alive session against a new connection per request (what the first
   version of this integration did);
2. our whole per-message cost (validation, token, ledger claim/reserve/record in batches) against a bare
   ``requests.Session.post`` of the same payloads;
3. 500 messages to one member through the limiter with WeCom's windows scaled down 60x in both the
   simulator and the limiter: silent drops, and the time against the theoretical minimum.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import requests

from wecom import warehouse
from wecom.delivery import AppMessages, MemberLimits, Sender
from wecom.hooks import WeComHook
from wecom.outbox import Outgoing
from wecom.payloads import text
from wecom_dev.environment import (
    airflow_connections,
    postgres_conn_json,
    scratch_database,
    simulator_process,
    wecom_conn_json,
)
from wecom_simulator import SimulatorAdmin, SimulatorConfig

SCALE = 60.0


def bare(url: str, token: str, bodies: list[bytes], pooled: bool) -> float:
    session = requests.Session()
    session.trust_env = False
    target = f"{url}/cgi-bin/message/send"
    started = time.perf_counter()
    for body in bodies:
        if pooled:
            response = session.post(target, params={"access_token": token}, data=body, timeout=10)
        else:
            with requests.Session() as fresh:  # a new TCP connection for every message
                fresh.trust_env = False
                response = fresh.post(target, params={"access_token": token}, data=body, timeout=10)
        assert response.json()["errcode"] == 0
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--burst", type=int, default=500)
    args = parser.parse_args()
    config = SimulatorConfig()
    sim_args = ("--users", str(args.messages), "--departments", "10", "--time-scale", str(SCALE))
    with scratch_database() as db_url, simulator_process(*sim_args) as sim_url:
        admin = SimulatorAdmin(sim_url)
        with airflow_connections(
            wecom_default=wecom_conn_json(sim_url), wecom_warehouse=postgres_conn_json(db_url)
        ):
            users = [u["userid"].lower() for u in admin.org()["users"]]
            hook = WeComHook()
            token = hook.get_access_token()

            def body(i: int, user: str) -> bytes:
                message = {
                    "touser": user,
                    "agentid": config.agent_id,
                    **text(f"第 {i} 条提醒：今天 10:00 面试"),
                }
                return json.dumps(message, ensure_ascii=False).encode()

            pooled_s = bare(sim_url, token, [body(i, u) for i, u in enumerate(users)], pooled=True)
            fresh_s = bare(sim_url, token, [body(i, u) for i, u in enumerate(users)], pooled=False)
            floor_s = bare(sim_url, token, [body(i, u) for i, u in enumerate(users)], pooled=True)

            messages = [
                Outgoing(f"bench:{i}:{u}", u, text(f"第 {i} 条提醒：今天 10:00 面试"))
                for i, u in enumerate(users)
            ]
            with warehouse.connect_current() as conn:
                time.sleep(60 / SCALE * 1.1)  # let the scaled minute pass: each member got 3 already
                started = time.perf_counter()
                summary = Sender(AppMessages(hook), conn, limits=MemberLimits(time_scale=SCALE)).send(
                    messages
                )
                ours_s = time.perf_counter() - started
                assert summary.sent == len(users), summary

                admin.reset()
                one = users[0]
                burst = [Outgoing(f"burst:{i}", one, text(f"burst {i}")) for i in range(args.burst)]
                started = time.perf_counter()
                burst_summary = Sender(
                    AppMessages(hook), conn, limits=MemberLimits(time_scale=SCALE, max_wait=3600)
                ).send(burst)
                burst_s = time.perf_counter() - started
                stats = admin.stats()
                dropped = [d["content"] for d in admin.drops()]

    n = len(users)
    minute = 60 / SCALE
    minimum = (math.ceil(args.burst / 30) - 1) * minute
    print(f"{n:,} messages, each to a different member, simulator on loopback (no TLS)")
    print(f"  pooled keep-alive session:      {n / pooled_s:8.0f} msg/s")
    print(
        f"  new connection per request:     {n / fresh_s:8.0f} msg/s   -> pooling is {fresh_s / pooled_s:.2f}x faster"
    )
    print(f"  bare Session.post (floor):      {n / floor_s:8.0f} msg/s")
    print(f"  ours (validate, token, ledger): {n / ours_s:8.0f} msg/s   -> {ours_s / floor_s:.2f}x the bare post "
          "(goal < 1.5x)")  # fmt: skip
    print(f"{args.burst} messages to one member, windows scaled {SCALE:.0f}x (a minute lasts {minute:.1f}s):")
    print(f"  sent {burst_summary.sent}, deferred {burst_summary.deferred}, silent drops counted by the simulator: "
          f"{stats['silent_drops']} (goal 0) {dropped[:10]}")  # fmt: skip
    print(
        f"  took {burst_s:.2f}s; theoretical minimum {minimum:.2f}s -> {burst_s / minimum:.3f}x (goal <= 1.1x)"
    )


if __name__ == "__main__":
    main()

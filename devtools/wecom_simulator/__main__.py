"""``wecom-simulator``: run the WeCom simulator as a server."""

from __future__ import annotations

import argparse
import signal
import sys

from wecom_simulator.org import generate_org
from wecom_simulator.server import SimulatorConfig, WeComSimulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = SimulatorConfig()
    parser = argparse.ArgumentParser(prog="wecom-simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port (printed on start)")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--departments", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--new-app", action="store_true", help="omit sensitive fields, as for apps made after 2022-06-20"
    )
    parser.add_argument("--corp-id", default=defaults.corp_id)
    parser.add_argument("--secret", default=defaults.secret, help="the app secret the simulator accepts")
    parser.add_argument("--agent-id", type=int, default=defaults.agent_id)
    parser.add_argument(
        "--webhook-key", action="append", help="a robot key the simulator accepts (repeatable)"
    )
    parser.add_argument("--token-lifetime", type=int, default=defaults.token_lifetime)
    parser.add_argument("--time-scale", type=float, default=1.0, help="divide WeCom's rate windows by this")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every API call")
    parser.add_argument(
        "--schedule-forbidden",
        action="store_true",
        help="the app may not call the calendar/schedule APIs (48002), as before an admin allows it",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = SimulatorConfig(
        corp_id=args.corp_id,
        secret=args.secret,
        agent_id=args.agent_id,
        webhook_keys=tuple(args.webhook_key or SimulatorConfig().webhook_keys),
        token_lifetime=args.token_lifetime,
        time_scale=args.time_scale,
        schedule_allowed=not args.schedule_forbidden,
    )
    org = generate_org(users=args.users, departments=args.departments, seed=args.seed, new_app=args.new_app)
    simulator = WeComSimulator(org, config, host=args.host, port=args.port)
    simulator.state.latency_ms = args.latency_ms
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(
        f"wecom-simulator listening on {simulator.url} ({len(org.users)} users, "
        f"{len(org.departments)} departments, corp id {config.corp_id}, agent id {config.agent_id})",
        flush=True,
    )
    try:
        simulator.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass


if __name__ == "__main__":
    main()

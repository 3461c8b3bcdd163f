"""``make demo``: the pipeline end to end on an embedded default (simulator + local PostgreSQL)."""

from __future__ import annotations

from wecom.hooks import WeComHook
from wecom.simulator import SimulatorAdmin
from wecom.testing.environment import (
    airflow_connections,
    postgres_conn_json,
    scratch_database,
    simulator_process,
    wecom_conn_json,
)


def main() -> None:
    with (
        scratch_database("wecom_demo") as db_url,
        simulator_process("--users", "300", "--departments", "30") as sim_url,
        airflow_connections(
            wecom_default=wecom_conn_json(sim_url), wecom_warehouse=postgres_conn_json(db_url)
        ),
    ):
        hook = WeComHook()
        departments = hook.list_departments()
        members = {m["userid"].lower() for d in departments for m in hook.list_department_members(d["id"])}
        calls = SimulatorAdmin(sim_url).stats()["calls"]
        print(f"WeCom simulator at {sim_url}: {len(departments)} departments, {len(members)} members read")
        print(f"API calls: {calls} (one gettoken, cached in the warehouse's wecom_private schema)")


if __name__ == "__main__":
    main()

"""A stand-in for the interview platform's database: its tables and the contract views over them."""

from __future__ import annotations

from typing import Any

from wecom import sql


def create_platform_schema(conn: Any) -> None:
    """The platform's tables and the contract views, for the demo, tests and benchmarks."""
    conn.execute(sql.load("interview/platform_schema.sql"))
    conn.execute(sql.load("interview/contract_views.sql"))
    conn.commit()

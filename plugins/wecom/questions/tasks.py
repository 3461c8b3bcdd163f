"""What the questions DAG runs (the public API DAG files use)."""

from __future__ import annotations

from typing import Any

from wecom import warehouse
from wecom.airflow_api import AIRFLOW_API_CONN_ID, AirflowApi
from wecom.hooks import WeComHook
from wecom.questions import bridge


def settle_questions(
    wecom_conn_id: str = WeComHook.default_conn_name,
    warehouse_conn_id: str = warehouse.WAREHOUSE_CONN_ID,
    airflow_api_conn_id: str = AIRFLOW_API_CONN_ID,
) -> dict[str, Any]:
    """Answer waiting taps in Airflow, record decisions made elsewhere, show every decision on its cards."""
    with warehouse.connect_current(warehouse_conn_id) as conn:
        return bridge.settle(AirflowApi(airflow_api_conn_id), WeComHook(wecom_conn_id), conn)

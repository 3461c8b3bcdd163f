"""OpenLineage for the pipelines: what a task read and wrote, with row counts, for the data team's catalog.

Tasks report through Airflow's hook lineage collector (``report``); the OpenLineage provider's listener
turns what was collected into its events, through the converter this provider registers for ``wecom://``
asset URIs (``to_openlineage``). Warehouse tables keep their PostgreSQL names (namespace
``postgres://host:port``, name ``database.schema.table``), so they join the same datasets other jobs
write; the WeCom API's datasets are ``wecom://<corp id>`` / ``department/list``, ``user/list``.
Nothing here is needed to run the pipelines: without the OpenLineage provider the reports go nowhere.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import SplitResult, urlsplit

log = logging.getLogger(__name__)

SCHEME = "wecom"


def warehouse_table(conn_id: str, table: str) -> dict[str, Any]:
    """A PostgreSQL table named as OpenLineage names it, from an Airflow connection (no I/O but the
    connection lookup)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    return {"namespace": f"postgres://{conn.host}:{conn.port or 5432}", "name": f"{conn.schema}.{table}"}


def wecom_api(corp_id: str, path: str) -> dict[str, Any]:
    return {"namespace": f"{SCHEME}://{corp_id}", "name": path}


def report(
    source: object, *, inputs: list[tuple[dict, int]] = (), outputs: list[tuple[dict, int]] = ()
) -> None:
    """Tell Airflow's lineage collector what this task read and wrote: (dataset, rows) pairs; ``source`` is
    what read or wrote them (a hook)."""
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector
    except ImportError:  # an Airflow without hook lineage
        return
    collector = get_hook_lineage_collector()
    for role, pairs, add in (
        ("input", inputs, collector.add_input_asset),
        ("output", outputs, collector.add_output_asset),
    ):
        for dataset, rows in pairs:
            uri = f"{SCHEME}://lineage/{dataset['namespace'].replace('://', '/')}/{dataset['name']}"
            add(context=source, uri=uri, asset_extra={**dataset, "role": role, "rows": int(rows)})


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """``wecom://`` URIs are ours and already in their final form."""
    return uri


def to_openlineage(asset: Any, lineage_context: Any) -> Any:
    """An OpenLineage input or output dataset, with its row count as the standard statistics facet."""
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.generated.input_statistics_input_dataset import InputStatisticsInputDatasetFacet
    from openlineage.client.generated.output_statistics_output_dataset import (
        OutputStatisticsOutputDatasetFacet,
    )

    extra = asset.extra or {}
    if "namespace" not in extra:  # a wecom:// asset that is not a lineage report (the directory assets)
        parts = urlsplit(asset.uri)
        return OutputDataset(namespace=f"{parts.scheme}://{parts.netloc}", name=parts.path.lstrip("/"))
    rows = int(extra.get("rows", 0))
    if extra.get("role") == "input":
        facet = InputStatisticsInputDatasetFacet(rowCount=rows)
        return InputDataset(
            namespace=extra["namespace"], name=extra["name"], inputFacets={"inputStatistics": facet}
        )
    facet = OutputStatisticsOutputDatasetFacet(rowCount=rows)
    return OutputDataset(
        namespace=extra["namespace"], name=extra["name"], outputFacets={"outputStatistics": facet}
    )

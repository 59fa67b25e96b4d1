"""Settings in, Elasticsearch request bodies (dicts) out: every request atlas sends is built here."""

from __future__ import annotations

from typing import Any

from atlas.settings import SourceSettings
from atlas.templating import render_json

MAX_METRICS = 10_000


def source_query(source: SourceSettings) -> dict[str, Any]:
    """The query selecting the source documents: the configured extra filter, or everything."""
    if not source.filter:
        return {"match_all": {}}
    return {"bool": {"filter": [dict(source.filter)]}}


def build_source_summary(source: SourceSettings) -> dict[str, Any]:
    """Documents, time range and series count per metric of a long-form source index."""
    return render_json(
        "source_summary.json.j2",
        time_field=source.time_field,
        group_field=source.metric_field,
        series_field=source.series_fields[0],
        max_groups=MAX_METRICS,
        query=source_query(source),
    )

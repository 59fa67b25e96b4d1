"""The source before any surprise: which metrics to watch, and whether its documents have the configured fields."""

from __future__ import annotations

from datetime import datetime

from atlas import es_client
from atlas.errors import DataError
from atlas.es_client import EsClient
from atlas.queries import (
    build_any_document_request,
    build_metric_names_request,
    build_source_metrics_request,
    read_any_document,
    read_metric_names,
    read_source_metrics,
    source_field_names,
)
from atlas.settings import Settings, SourceSettings


def resolve_metrics(client: EsClient, settings: Settings, within: tuple[datetime, datetime] | None = None) -> list[str]:
    """The metrics to watch: as configured, the wide-form value fields' metrics, or every metric in the index.
    `within` ([start, end), UTC): the metrics with documents there, if any (a job every 5 minutes then reads the
    documents its windows read, not the whole index), else every metric in the index."""
    source = settings.source
    if source.value_fields:
        return list(source.value_fields)
    if source.metrics:
        return list(source.metrics)
    found = _metric_names(client, source, within) if within is not None else []
    found = found or _metric_names(client, source, None)
    if not found:
        raise DataError(f"no metrics found in {source.index} (field {source.metric_field}); index data first")
    return found


def _metric_names(client: EsClient, source: SourceSettings, within: tuple[datetime, datetime] | None) -> list[str]:
    body = build_metric_names_request(source, within)
    answer = es_client.search(client, source.index, body, filter_path="aggregations.groups.buckets.key")
    return read_metric_names(answer)


def check_source_fields(client: EsClient, settings: Settings) -> None:
    """Refuse a source whose documents lack a configured field (a typo in atlas.yml would otherwise give windows
    with nothing in them, and no word why): the time, series, metric and value fields must each be in some document.
    One request per field that stops at the first document found (terminate_after), so that a job every 5 minutes
    does not read the whole index for it; the configured metric names, if any, in one more request."""
    source = settings.source
    if not _any_document(client, source, None):
        raise DataError(f"no documents in {source.index} (source.index); index data first")
    for name in source_field_names(source):
        if not _any_document(client, source, name):
            raise DataError(
                f"no document of {source.index} has the field {name!r}: check source.* in the configuration"
            )
    named = [] if source.value_fields else list(source.metrics)  # a misspelt metric would be watched in silence
    if named:
        answer = es_client.search(client, source.index, build_source_metrics_request(source, named))
        read_source_metrics(answer, source, named)


def _any_document(client: EsClient, source: SourceSettings, field: str | None) -> bool:
    body = build_any_document_request(source, field)
    return read_any_document(es_client.search(client, source.index, body, filter_path="hits.total"))

"""The source before any surprise: which metrics to watch, and whether its documents have the configured fields."""

from __future__ import annotations

from atlas import es_client
from atlas.errors import DataError
from atlas.es_client import EsClient
from atlas.queries import build_source_fields_request, build_source_summary, read_metric_names, read_source_fields
from atlas.settings import Settings


def resolve_metrics(client: EsClient, settings: Settings) -> list[str]:
    """The metrics to watch: as configured, the wide-form value fields' metrics, or every metric in the index."""
    source = settings.source
    if source.value_fields:
        return list(source.value_fields)
    if source.metrics:
        return list(source.metrics)
    found = read_metric_names(es_client.search(client, source.index, build_source_summary(source)))
    if not found:
        raise DataError(f"no metrics found in {source.index} (field {source.metric_field}); index data first")
    return found


def check_source_fields(client: EsClient, settings: Settings) -> None:
    """Refuse a source whose documents lack a configured field (a typo in atlas.yml would otherwise give windows
    with nothing in them, and no word why): the time, series, metric and value fields must each be in some document."""
    source = settings.source
    read_source_fields(es_client.search(client, source.index, build_source_fields_request(source)), source)

"""Index source documents atlas produces (simulated or imported) and report what the index then holds."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from atlas import es_client, indices, queries
from atlas.clock import format_instant
from atlas.es_client import EsClient
from atlas.ingest.csv_file import MetricSample
from atlas.settings import SourceSettings


@dataclass(frozen=True)
class LoadReport:
    index: str
    indexed: int
    seconds: float
    docs_per_second: float
    index_documents: int
    first: str | None
    last: str | None
    series_per_metric: dict[str, int]

    def summary(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "indexed": self.indexed,
            "seconds": round(self.seconds, 3),
            "docs_per_second": round(self.docs_per_second, 1),
            "index_documents": self.index_documents,
            "first": self.first,
            "last": self.last,
            "series_per_metric": self.series_per_metric,
        }


def sample_documents(samples: Iterable[MetricSample], source: SourceSettings) -> Iterator[dict[str, Any]]:
    """Long-form source documents for imported samples; the `_id` makes re-importing a row idempotent."""
    series_field = source.series_fields[0]
    for sample in samples:
        timestamp = format_instant(sample.timestamp)
        yield {
            "_id": f"{sample.metric}|{sample.series}|{timestamp}",
            source.time_field: timestamp,
            source.metric_field: sample.metric,
            series_field: sample.series,
            source.value_field: sample.value,
        }


def load_documents(
    client: EsClient,
    source: SourceSettings,
    index: str,
    docs: Iterable[Mapping[str, Any]],
    *,
    extra_keywords: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> LoadReport:
    """Create the source index if needed, bulk-index `docs` into it and summarise the index afterwards."""
    indices.ensure_source_index(client, index, source, extra_keywords)
    result = es_client.bulk_index(client, index, docs, progress=progress)
    response = es_client.search(client, index, queries.build_source_summary(source))
    aggs = response["aggregations"]
    return LoadReport(
        index=index,
        indexed=result.indexed,
        seconds=result.seconds,
        docs_per_second=result.docs_per_second,
        index_documents=int(response["hits"]["total"]["value"]),
        first=aggs["first"].get("value_as_string"),
        last=aggs["last"].get("value_as_string"),
        series_per_metric={b["key"]: int(b["series"]["value"]) for b in aggs["groups"]["buckets"]},
    )

"""Where the job keeps its results: the result indices (ElasticStore), or memory laid over them for a dry run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from atlas import results
from atlas.es_client import EsClient
from atlas.records import Anomaly, WindowSurprise
from atlas.settings import Settings


class ResultStore(Protocol):
    """The job's surprise and anomaly results: what it reads back for the threshold, and where it writes."""

    def read_surprise(self, start: datetime, end: datetime, metrics: Sequence[str]) -> list[WindowSurprise]:
        """Surprise of the windows ending in [start, end] (UTC) of `metrics`, by window end then metric."""
        ...

    def read_anomalies(self, start: datetime, end: datetime) -> list[Anomaly]:
        """Anomalies with window ends in [start, end] (UTC), by window end, metric, percentile."""
        ...

    def write_surprise(self, found: Sequence[WindowSurprise]) -> int:
        """Keep surprise results (replacing any of the same metric and window); returns the documents indexed."""
        ...

    def write_anomalies(self, found: Sequence[Anomaly]) -> int:
        """Keep anomalies (replacing any of the same point); returns the documents indexed."""
        ...


class ElasticStore:
    """The job's result indices in Elasticsearch (atlas/results.py's documents and ids)."""

    def __init__(self, client: EsClient, settings: Settings) -> None:
        self.client, self.settings = client, settings

    def read_surprise(self, start: datetime, end: datetime, metrics: Sequence[str]) -> list[WindowSurprise]:
        return results.read_surprise(self.client, self.settings, start, end, metrics)

    def read_anomalies(self, start: datetime, end: datetime) -> list[Anomaly]:
        return results.read_anomalies(self.client, self.settings, start, end)

    def write_surprise(self, found: Sequence[WindowSurprise]) -> int:
        return results.write_surprise(self.client, self.settings, found)

    def write_anomalies(self, found: Sequence[Anomaly]) -> int:
        return results.write_anomalies(self.client, self.settings, found)


class MemoryStore:
    """A dry run's store: reads the result indices with what this run wrote laid over them, writes only to memory
    (0 documents indexed), so each chunk is thresholded as a real run would threshold it."""

    def __init__(self, client: EsClient, settings: Settings) -> None:
        self.indices = ElasticStore(client, settings)
        self.surprise: dict[tuple[str, datetime], WindowSurprise] = {}
        self.anomalies: dict[tuple[str, float, datetime], Anomaly] = {}

    def read_surprise(self, start: datetime, end: datetime, metrics: Sequence[str]) -> list[WindowSurprise]:
        kept = {(r.metric, r.window_end): r for r in self.indices.read_surprise(start, end, metrics)}
        kept.update((k, r) for k, r in self.surprise.items() if start <= r.window_end <= end and r.metric in metrics)
        return sorted(kept.values(), key=lambda r: (r.window_end, r.metric))

    def read_anomalies(self, start: datetime, end: datetime) -> list[Anomaly]:
        kept = {_point(a): a for a in self.indices.read_anomalies(start, end)}
        kept.update((k, a) for k, a in self.anomalies.items() if start <= a.window_end <= end)
        return sorted(kept.values(), key=_point_order)

    def write_surprise(self, found: Sequence[WindowSurprise]) -> int:
        self.surprise.update(((r.metric, r.window_end), r) for r in found)
        return 0

    def write_anomalies(self, found: Sequence[Anomaly]) -> int:
        self.anomalies.update((_point(a), a) for a in found)
        return 0


def _point(a: Anomaly) -> tuple[str, float, datetime]:
    return a.metric, a.percentile, a.window_end


def _point_order(a: Anomaly) -> tuple[datetime, str, float]:
    return a.window_end, a.metric, a.percentile

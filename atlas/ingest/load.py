"""Index source documents atlas produces (simulated or imported) and report what the index then holds."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from atlas import es_bulk, es_client, indices, queries
from atlas.errors import AtlasError, ConfigError, DataError
from atlas.es_client import EsClient
from atlas.ingest.csv_file import MetricSample, format_timestamp
from atlas.settings import SourceSettings

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# What Elasticsearch refuses in an index name (MetadataCreateIndexService.validateIndexOrAliasName, 7.x and 8.x;
# `:` is deprecated in 7 and refused in 8). Control characters are ours: they would reach a terminal in messages.
_INDEX_FORBIDDEN = '\\/*?"<>| ,#:'
_MAX_INDEX_BYTES = 255
IMPORT_STREAMS = 2  # bulk streams of an import side by side
log = logging.getLogger(__name__)


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


def document_id(sample: MetricSample) -> str:
    """The `_id` of an imported sample: sha256 hex of the JSON array [metric, series, epoch milliseconds].

    JSON keeps the three parts apart whatever the names hold (`a|b` + `c` differs from `a` + `b|c`), milliseconds
    are what the `date` field keeps, and the id is 64 bytes, far under Elasticsearch's 512, for any name."""
    return _document_id(_json_text(sample.metric), _json_text(sample.series), sample.timestamp)


def _document_id(metric_json: str, series_json: str, timestamp: datetime) -> str:
    # what json.dumps([metric, series, millis], ensure_ascii=False, separators=(",", ":")) writes
    key = f"[{metric_json},{series_json},{_epoch_millis(timestamp)}]"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _json_text(name: str) -> str:
    """The name as a JSON string, as json.dumps writes it with ensure_ascii=False (sooner for most names: those
    without a quote, backslash or control character it writes as they are)."""
    if name.isprintable() and '"' not in name and "\\" not in name:
        return f'"{name}"'
    return json.dumps(name, ensure_ascii=False)


@functools.lru_cache(maxsize=65_536)  # each timestamp repeats once per series
def _epoch_millis(timestamp: datetime) -> int:
    return (timestamp - _EPOCH) // timedelta(milliseconds=1)


def sample_documents(samples: Iterable[MetricSample], source: SourceSettings) -> Iterator[dict[str, Any]]:
    """Long-form source documents for imported samples, each `_source` already JSON text (what json.dumps writes
    with ensure_ascii=False and no spaces); the `_id` makes re-importing a row idempotent."""
    fields = (source.time_field, source.metric_field, source.series_fields[0], source.value_field)
    time_key, metric_key, series_key, value_key = (_json_text(name) for name in fields)
    for sample in samples:
        metric, series = _json_text(sample.metric), _json_text(sample.series)
        if not math.isfinite(sample.value):  # JSON has no NaN or infinity; the readers refuse them before this
            raise ValueError(f"{sample.metric} {sample.series}: value {sample.value!r} is not a finite number")
        body = (
            f'{{{time_key}:"{format_timestamp(sample.timestamp)}",{metric_key}:{metric},{series_key}:{series},'
            f"{value_key}:{float(sample.value)!r}}}"
        )
        yield {"_id": _document_id(metric, series, sample.timestamp), "_source": body}


def check_index_name(name: str, option: str) -> str:
    """`name` if Elasticsearch can create an index by that name, else ConfigError naming `option` and the rule."""
    problem = _index_name_problem(name)
    if problem:
        raise ConfigError(f"{option}: {name!r} is not a valid index name: {problem}")
    return name


def _index_name_problem(name: str) -> str | None:
    forbidden = sorted({c for c in name if c in _INDEX_FORBIDDEN or not c.isprintable()})
    if not name:
        return "it is empty"
    if name in (".", ".."):
        return "it cannot be . or .."
    if name[0] in "-_+":
        return "it cannot start with -, _ or +"
    if forbidden:
        return f"it cannot contain {' '.join(repr(c) for c in forbidden)}"
    if name != name.lower():
        return "it must be lowercase"
    if len(name.encode("utf-8")) > _MAX_INDEX_BYTES:
        return f"it is longer than {_MAX_INDEX_BYTES} bytes"
    return None


class CheckedSamples(Protocol):
    """Input files checked whole (CSV or RRD): their good rows, the bad rows skipped, warnings, the samples read
    again."""

    @property
    def rows(self) -> int: ...

    @property
    def skipped(self) -> int: ...

    def notes(self) -> list[str]: ...

    def samples(self) -> Iterator[MetricSample]: ...


@dataclass(frozen=True)
class ImportReport:
    """What an import (`atlas ingest csv`, `atlas ingest rrd`) did: good rows sent, documents the index gained, bad rows
    skipped."""

    load: LoadReport
    rows: int
    gained: int
    skipped: int

    def summary(self) -> dict[str, Any]:
        """`indexed` is what the index gained; `replaced` the rows that rewrote a document with the same metric,
        series and timestamp (repeated in the input, or already in the index): `rows` = `indexed` + `replaced`."""
        counts = {"rows": self.rows, "indexed": self.gained, "replaced": self.rows - self.gained}
        return self.load.summary() | counts | {"skipped": self.skipped}


def import_samples(
    client: EsClient,
    source: SourceSettings,
    index: str,
    checked: CheckedSamples,
    *,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Index the samples of checked CSV or RRD files (read a second time) into `index` and count what the index gained.

    The count is the index's document count after minus before, exact unless something else writes to the index
    meanwhile."""
    created = indices.ensure_source_index(client, index, source, ())
    before = 0 if created else _count_documents(client, index)
    docs = sample_documents(checked.samples(), source)
    # Of rows repeating a metric, series and timestamp the last one is what the index keeps: each stream sends its
    # requests one at a time in input order, and a document id always goes to the same stream.
    acknowledged = 0

    def counted(n: int) -> None:
        nonlocal acknowledged
        if created and not acknowledged and n:  # the first documents searchable at once: the import shows its start
            es_client.refresh(client, index)
        acknowledged += n
        if progress is not None:
            progress(n)

    try:
        with _refresh_paused(client, index, created):
            report = load_documents(client, source, index, docs, progress=counted, threads=IMPORT_STREAMS, by_id=True)
    except DataError as exc:  # a file changed under the import: its message says what may be indexed; name where
        raise DataError(f"{exc} (index {index})") from exc
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the requests in flight finish, nothing more is sent
        log.warning(
            "stopped: at least %d of %d rows are indexed into %s; importing the same files again finishes the"
            " import (each row rewrites its own document)", acknowledged, checked.rows, index,
        )  # fmt: skip
        raise
    gained = _count_documents(client, index) - before
    return ImportReport(load=report, rows=report.indexed, gained=gained, skipped=checked.skipped)


@contextmanager
def _refresh_paused(client: EsClient, index: str, created: bool) -> Iterator[None]:
    """No periodic refresh of an index this import created while it is filled (fewer, larger segments: less work
    for the node), its refresh_interval given back at the end, also on an error or Ctrl-C. An index that was there
    before is left as its owner set it. The import refreshes after its first bulk answer (in a created index) and at
    its end."""
    if not created:
        yield
        return
    name = "index.refresh_interval"
    previous = es_client.index_setting(client, index, name)  # an index template may have set one
    es_client.put_index_settings(client, index, {name: "-1"})
    try:
        yield
    except BaseException:
        try:
            es_client.put_index_settings(client, index, {name: previous})
        except AtlasError as exc:  # the import's own error matters more; say how to finish by hand
            log.warning(
                "%s: its %s is still -1 (%s); set it back with PUT /%s/_settings {\"%s\": %s}",
                index, name, exc, index, name, json.dumps(previous),
            )  # fmt: skip
        raise
    es_client.put_index_settings(client, index, {name: previous})


def _count_documents(client: EsClient, index: str) -> int:
    """Every document of the index, searchable or not yet (hence the refresh), whatever source.filter says."""
    es_client.refresh(client, index)
    body = {"size": 0, "track_total_hits": True, "query": {"match_all": {}}}
    return int(es_client.search(client, index, body)["hits"]["total"]["value"])


def load_documents(
    client: EsClient,
    source: SourceSettings,
    index: str,
    docs: Iterable[Mapping[str, Any]],
    *,
    extra_keywords: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
    threads: int = 2,
    by_id: bool = False,
) -> LoadReport:
    """Create the source index if needed, bulk-index `docs` into it (`threads` bulk requests at a time) and
    summarise the index afterwards. `by_id`: the documents of one `_id` are indexed in their input order."""
    indices.ensure_source_index(client, index, source, extra_keywords)
    # crc32, not hash(): the same id goes to the same stream in every process
    route = (lambda doc: zlib.crc32(str(doc["_id"]).encode("utf-8")) % threads) if by_id else None
    result = es_bulk.bulk_index(client, index, docs, progress=progress, threads=threads, route=route)
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

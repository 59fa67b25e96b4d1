"""atlas against the per-window loop, the bare aggregation, a client-side peer and a raw _bulk, side by side.

    python bench/performance.py --url http://127.0.0.1:9250 [--scale small|blog] [--cluster-port 9403]
        [--parts ingest backfill hourly series cluster hosts5m] [--loop-windows N] [--hosts-wide N]
        [--hosts-steps narrow wide] [--keep-hosts-indices]

Needs a running node at --url (`atlas es start`, or `atlas es start --version opensearch-2.19.6` and --url
http://127.0.0.1:9240: nothing here assumes Elasticsearch); starts (and stops) its own 3-node cluster of the same
server on --cluster-port unless --skip-cluster. The blog's scale: `--parts backfill hourly series --loop-windows 24`
(the per-window loop over all 553 windows would take hours; it is timed on N windows spread over them and scaled).
`--parts hosts5m`: a 5-minute run of the configuration `atlas init --preset hosts --interval 5m` writes, on 24 hosts
x 38 columns of 1-minute documents, then on one host of --hosts-wide columns (10,000) of 5-minute documents (a
lighter history: the buckets read are the same), against the bare aggregation of the same buckets; its indices are
deleted at the end. Prints one table: each ratio with the two times it divides, the documents, series and windows,
the machine's core count and the server.
Absolute times depend on the machine; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from atlas import es_client, indices, job, presets, simulate  # noqa: E402
from atlas.clock import format_duration, format_instant  # noqa: E402
from atlas.distributions import DISTRIBUTIONS  # noqa: E402
from atlas.embedded import default_home, start_cluster, stop_cluster  # noqa: E402
from atlas.errors import EsQueryRejected  # noqa: E402
from atlas.ingest import csv_file, load  # noqa: E402
from atlas.queries import build_source_summary, build_surprise_request, window_range  # noqa: E402
from atlas.records import WindowSurprise  # noqa: E402
from atlas.settings import Settings, load_settings  # noqa: E402
from atlas.surprise import (  # noqa: E402
    DEFAULT_BUDGET,
    check_source_fields,
    compute_window_surprise,
    exact_percentile,
    plan_requests,
    resolve_metrics,
    scan_surprise,
    window_buckets_per_series,
)
from atlas.surprise.plan import is_too_many_buckets  # noqa: E402
from atlas.surprise.series import list_series  # noqa: E402
from tests.memory import run_measured  # noqa: E402

START = datetime(2024, 1, 1, tzinfo=UTC)
T = TypeVar("T")


@dataclass(frozen=True)
class Scale:
    metrics: int
    queries: int
    nodes: int
    hours: int
    run_windows: int  # hourly runs timed against the bare aggregation and the peer
    series_steps: tuple[int, ...]  # series per metric of the scaling runs
    series_window: str  # their surprise.window (baseline_window buckets of the same length)


SCALES = {
    "small": Scale(2, 100, 2, 648, 8, (2_000, 6_000, 20_000), "6h"),
    "blog": Scale(5, 500, 30, 600, 8, (10_000, 30_000, 100_000), "24h"),
}
PARTS = ["ingest", "backfill", "hourly", "series", "cluster", "hosts5m"]
DEFAULT_PARTS = PARTS[:5]  # hosts5m indexes its own 4.5M documents: asked for by name
Row = tuple[str, str, str, str, str]
rows: list[Row] = []


def timed(action: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = action(*args)
    return time.perf_counter() - started, value


def cold(client: es_client.EsClient, index: str, action: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """`timed` with the index's shard request cache emptied first: each hourly run asks about a new window, so in
    use nothing it asks is cached, while a search repeated here (the same window, or the peer's request after the
    bare one) would be answered from the cache."""
    client.raw.indices.clear_cache(index=index, request=True)
    return timed(action, *args)


def report(name: str, a: float, b: float, detail: str, unit: str = "s") -> None:
    rows.append((name, f"{a / b:.3g}x" if b else "-", f"{a:.3f} {unit}", f"{b:.3f} {unit}", detail))
    print(f"{name}: {a:.3f} / {b:.3f} = {a / b if b else math.nan:.2f}  ({detail})", file=sys.stderr, flush=True)


def settings_for(url: str, index: str, **extra: Any) -> Settings:
    """The blog's surprise (mode max, no normalization), which the client-side peer computes too."""
    pinned = {"surprise.mode": "max", "surprise.normalization": "none", "surprise.percentiles": [90]}
    return load_settings(
        None, {"es.urls": [url], "source.index": index, "es.request_timeout": "30m", **pinned, **extra}
    )


def raw_bulk(url: str, index: str, ndjson: Path, chunk: int = 2000) -> float:
    """Seconds to _bulk the NDJSON file into `index` with plain HTTP, 2 requests in flight, then refresh."""

    def chunks() -> Iterator[bytes]:
        with ndjson.open("rb") as handle:
            lines: list[bytes] = []
            for line in handle:
                lines.append(line)
                if len(lines) == 2 * chunk:
                    yield b"".join(lines)
                    lines = []
            if lines:
                yield b"".join(lines)

    def post(body: bytes) -> None:
        request = urllib.request.Request(
            f"{url}/{index}/_bulk", data=body, headers={"Content-Type": "application/x-ndjson"}
        )
        with urllib.request.urlopen(request, timeout=600) as answer:
            if json.loads(answer.read()).get("errors"):
                raise RuntimeError("raw _bulk: rejected documents")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(post, chunks()))
    urllib.request.urlopen(urllib.request.Request(f"{url}/{index}/_refresh", method="POST"), timeout=600).read()
    return time.perf_counter() - started


def write_ndjson(docs: Iterable[dict[str, Any]], path: Path) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for doc in docs:
            body = doc["_source"] if "_source" in doc else json.dumps({k: v for k, v in doc.items() if k != "_id"})
            out.write(json.dumps({"index": {"_id": doc["_id"]}}) + "\n" + body + "\n")
            count += 1
    return count


def response_bytes(url: str, index: str, body: dict[str, Any], filter_path: str | None) -> int:
    query = f"?filter_path={filter_path}" if filter_path else ""
    request = urllib.request.Request(
        f"{url}/{index}/_search{query}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=600) as answer:
        return len(answer.read())


def bare_body(
    settings: Settings,
    metrics: Sequence[str],
    end: datetime,
    start: datetime | None = None,
    partition: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """terms > date_histogram > avg per metric over the same documents and hours as the window's request; `start`:
    from there instead (its buckets, empty ones too, from there on); `partition`: (i, n), the i-th of n hash
    partitions of the series only."""
    body = build_surprise_request(settings, metrics, end).body
    query = body["query"]
    if start is not None:
        first = {"range": {settings.source.time_field: {"gte": format_instant(start), "lt": format_instant(end)}}}
        query = {"bool": {"filter": [first, *query["bool"]["filter"][1:]]}}
    aggs = {}
    for key, agg in body["aggs"].items():
        series = agg["aggs"]["series"]
        hours = series["aggs"]["hours"]
        histogram = dict(hours["date_histogram"])
        if start is not None:
            histogram["extended_bounds"] = {**histogram["extended_bounds"], "min": int(start.timestamp() * 1000)}
        terms = dict(series["terms"])
        if partition is not None:
            terms["include"] = {"partition": partition[0], "num_partitions": partition[1]}
        aggs[key] = {
            "filter": agg["filter"],
            "aggs": {
                "series": {
                    "terms": terms,
                    "aggs": {"hours": {"date_histogram": histogram, "aggs": {"x": hours["aggs"]["x"]}}},
                }
            },
        }
    return {"size": 0, "query": query, "aggs": aggs}


def peer_window(settings: Settings, response: dict[str, Any], metrics: Sequence[str], end: datetime) -> list[float]:
    """The client-side way: hourly buckets into pandas, baseline, surprise, window max and percentile there."""
    s = settings.surprise
    start_ms = (end - s.window).timestamp() * 1000
    found: list[float] = []
    for i, _ in enumerate(metrics):
        frame = pd.DataFrame(
            [
                (b["key"], h["key"], h["x"]["value"])
                for b in response["aggregations"][f"m{i}"]["series"]["buckets"]
                for h in b["hours"]["buckets"]
                if h["x"]["value"] is not None
            ],
            columns=["series", "t", "x"],
        )
        previous = frame.groupby("series")["x"].transform(
            lambda x: getattr(x.shift(1).rolling(s.baseline_window, min_periods=1), s.baseline)()
        )
        frame["s"] = (frame["x"] - previous).abs()
        scored = frame[(frame["t"] >= start_ms) & frame["s"].notna()]
        windows = np.sort(scored.groupby("series")["s"].max().to_numpy())
        found.extend(exact_percentile(windows, float(p)) for p in s.percentiles)
    return found


def bench_backfill(
    settings: Settings,
    metrics: list[str],
    ends: list[datetime],
    docs: int,
    series: int,
    loop_windows: int | None,
    repeats: int,
) -> None:
    """The one-scan backfill (median of `repeats` runs, one before the loop) against the per-window loop (one run);
    `loop_windows`: the loop is timed on that many windows spread over the range and its time scaled to all of them
    (at the blog's scale the whole loop takes hours)."""
    client = es_client.connect(settings.es)
    index = settings.source.index

    def one_scan() -> list[WindowSurprise]:
        return scan_surprise(client, settings, metrics, ends)

    first, got = cold(client, index, one_scan)
    sample = ends if loop_windows is None else ends[:: max(1, len(ends) // loop_windows)][:loop_windows]

    def loop() -> list[WindowSurprise]:
        with ThreadPoolExecutor(max_workers=2) as pool:  # as the pipeline runs it
            chunks = (sample[i : i + job.CHUNK] for i in range(0, len(sample), job.CHUNK))
            return [r for chunk in chunks for r in job.window_by_window(client, settings, metrics, pool, chunk)]

    per_window, want = cold(client, index, loop)
    scans = [first] + [cold(client, index, one_scan)[0] for _ in range(repeats - 1)]
    same = _same([r for r in got if r.window_end in set(sample)], want)
    timed_on = "" if len(sample) == len(ends) else f", loop timed on {len(sample)} of them and scaled"
    report(
        "backfill: per-window loop / one-scan",
        per_window * len(ends) / len(sample),
        statistics.median(scans),
        f"{len(ends)} windows{timed_on}, {docs} docs, {series} series, equal: {same}, one-scan: median of {repeats}",
    )


def _same(got: Sequence[WindowSurprise], want: Sequence[WindowSurprise]) -> bool:
    if [(r.metric, r.window_end, r.series_count) for r in got] != [
        (r.metric, r.window_end, r.series_count) for r in want
    ]:
        return False
    for g, w in zip(got, want, strict=True):
        for p, v in w.percentiles.items():
            if (v is None) != (g.percentiles[p] is None) or (
                v is not None and not math.isclose(g.percentiles[p] or 0.0, v, rel_tol=1e-9)
            ):
                return False
        if g.top_series and w.top_series and [t.series for t in g.top_series] != [t.series for t in w.top_series]:
            return False  # the per-window request names no top series (only anomalies get them)
    return True


def bench_hourly(url: str, settings: Settings, metrics: list[str], ends: list[datetime], series: int) -> None:
    client = es_client.connect(settings.es)
    index = settings.source.index
    atlas_t = bare_t = peer_t = 0.0
    equal = True
    # the bare aggregation and the peer ask for the metrics in the batches atlas asks for them (whole requests only)
    batches = plan_requests(client, settings, metrics, ends).batches
    for end in ends:
        a, got = cold(client, index, compute_window_surprise, client, settings, metrics, end)
        numbers: list[float] = []
        for batch in batches:
            body = bare_body(settings, batch, end)
            b, _ = cold(client, index, functools.partial(es_client.search, filter_path="took"), client, index, body)
            c, found = cold(
                client,
                index,
                lambda b, t, ms: peer_window(settings, es_client.search(client, index, b), ms, t),
                body,
                end,
                batch,
            )
            bare_t, peer_t, numbers = bare_t + b, peer_t + c, numbers + found
        mine = [r.percentiles[float(p)] for r in got for p in settings.surprise.percentiles]
        equal = (
            equal
            and len(mine) == len(numbers)
            and all(math.isclose(x or 0.0, y, rel_tol=1e-9) for x, y in zip(mine, numbers, strict=True))
        )
        atlas_t += a
    detail = f"{len(ends)} hourly runs, {len(metrics)} metrics x {series} series, {len(batches)} request(s) each"
    report("hourly run: atlas / bare aggregation (goal <= 1.25)", atlas_t, bare_t, detail)
    report(
        "hourly run: client-side peer / atlas (goal >= 5)", peer_t, atlas_t, f"{detail}, peer equal to 1e-9: {equal}"
    )
    request = build_surprise_request(settings, batches[0], ends[-1])
    filtered = response_bytes(url, index, request.body, request.filter_path)
    whole = response_bytes(url, index, request.body, None)
    report("response bytes: filtered / unfiltered (goal <= 0.001)", filtered, whole, "one hourly run", unit="B")


def bench_series(url: str, scale: Scale, repeats: int) -> None:
    """Time per series of an hourly run at each step: the median of `repeats` runs after a warm-up run."""
    per_series: list[tuple[int, float]] = []
    window = scale.series_window
    buckets = int(pd.Timedelta(window) / pd.Timedelta("1h"))
    hours = 2 * buckets
    for n in scale.series_steps:
        index = f"h1-bench-series-{n}"
        settings = settings_for(url, index, **{"surprise.window": window, "surprise.baseline_window": buckets})
        client = es_client.connect(settings.es)
        if not es_client.index_exists(client, index):
            spec = simulate.SimulationSpec(metrics=1, queries=n, nodes=1, hours=hours, scenario="none", start=START)
            load.load_documents(
                client, settings.source, index, simulate.simulate_documents(spec), extra_keywords=["node"]
            )
        end = START + timedelta(hours=hours)
        got = compute_window_surprise(client, settings, ["metric_0"], end)  # warm-up, not timed
        assert got and got[0].series_count == n, (n, got)
        seconds = statistics.median(
            cold(client, index, compute_window_surprise, client, settings, ["metric_0"], end)[0] for _ in range(repeats)
        )
        if n * window_buckets_per_series(settings) * 1.05 <= DEFAULT_BUDGET.buckets:  # one request: peer possible
            bench_hourly(url, settings, ["metric_0"], [end] * 4, n)
        per_series.append((n, seconds))
        rows.append(
            (
                f"hourly run, {n} series x {hours} h",
                "-",
                f"{seconds:.3f} s",
                f"{1e6 * seconds / n:.1f} us/series",
                f"1 metric, median of {repeats} runs",
            )
        )
    biggest = scale.series_steps[-1]
    overrides = {
        "es.urls": [url],
        "source.index": f"h1-bench-series-{biggest}",
        "es.request_timeout": "30m",
        "surprise.window": window,
        "surprise.baseline_window": buckets,
    }
    code = "\n".join(
        [
            "from datetime import datetime, timedelta, timezone",
            "from atlas import es_client",
            "from atlas.settings import load_settings",
            "from atlas.surprise import compute_window_surprise",
            f"s = load_settings(None, {overrides!r})",
            f"end = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(hours={hours})",
            "print(compute_window_surprise(es_client.connect(s.es), s, ['metric_0'], end)[0].series_count)",
        ]
    )
    measured = run_measured([sys.executable, "-c", code], ROOT, os.environ)
    times = [t / n for n, t in per_series]
    rows.append(
        (
            "series scaling: slowest / fastest time per series (goal <= 1.2)",
            f"{max(times) / min(times):.2f}x",
            "",
            "",
            f"peak RSS at {biggest} series: {measured.peak_mb:.0f} MB",
        )
    )


def bench_ingest(url: str, settings: Settings, spec: simulate.SimulationSpec, work: Path, repeats: int) -> int:
    """atlas's two ingest paths against a raw _bulk of the same NDJSON, taking turns `repeats` times (the machine's
    noise moves a single run by a quarter); the median of each side is reported. The simulated index stays."""
    client = es_client.connect(settings.es)
    index, raw_index, csv_index = (settings.source.index + suffix for suffix in ("", "-raw", "-csv"))
    ndjson, csv_path, samples_ndjson = work / "docs.ndjson", work / "docs.csv", work / "samples.ndjson"
    docs = write_ndjson(simulate.simulate_documents(spec), ndjson)
    with csv_path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["timestamp", "metric", "series", "value"])
        for doc in simulate.simulate_documents(spec):
            writer.writerow([doc["@timestamp"], doc["metric"], f"{doc['query']}|{doc['node']}", repr(doc["value"])])
    with csv_file.check_csv_files([csv_path]) as checked:
        write_ndjson(load.sample_documents(checked.samples(), settings.source), samples_ndjson)

    def load_simulated() -> None:
        docs = simulate.simulate_documents(spec)
        load.load_documents(client, settings.source, index, docs, extra_keywords=["node"])

    def import_csv() -> None:
        with csv_file.check_csv_files([csv_path]) as checked:
            load.import_samples(client, settings.source, csv_index, checked)

    def raw(path: Path, keywords: list[str]) -> float:
        indices.ensure_source_index(client, raw_index, settings.source, keywords)
        return raw_bulk(url, raw_index, path)

    seconds: dict[str, list[float]] = {"simulate": [], "raw": [], "csv": [], "csv raw": []}
    for _ in range(repeats):
        for name in (index, raw_index, csv_index):
            if es_client.index_exists(client, name):
                es_client.delete_index(client, name)
        seconds["simulate"].append(timed(load_simulated)[0])
        seconds["raw"].append(raw(ndjson, ["node"]))
        es_client.delete_index(client, raw_index)
        seconds["csv"].append(timed(import_csv)[0])
        es_client.delete_index(client, csv_index)
        seconds["csv raw"].append(raw(samples_ndjson, []))
        es_client.delete_index(client, raw_index)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    turns = f"median of {repeats} runs each, taking turns"
    report(
        "ingest simulate: docs/s atlas / raw _bulk (goal >= 0.8)",
        docs / median["simulate"],
        docs / median["raw"],
        f"{docs} docs, {turns}",
        unit="docs/s",
    )
    report(
        "ingest csv: docs/s atlas / raw _bulk (goal >= 0.8)",
        docs / median["csv"],
        docs / median["csv raw"],
        f"{docs} rows (check included), {turns}",
        unit="docs/s",
    )
    return docs


def bench_cluster(
    port: int,
    version: str,
    settings: Settings,
    spec: simulate.SimulationSpec,
    metrics: list[str],
    ends: list[datetime],
    repeats: int,
) -> None:
    """The one-scan backfill on a 3-node cluster of `version` (the --url node's) against the single node, each warmed
    by one scan, then taking turns `repeats` times, each from an empty request cache; the medians are reported."""
    data = Path(tempfile.mkdtemp(prefix="h1-bench-3n-", dir="/tmp"))
    data.chmod(0o755)
    try:
        status, _ = start_cluster(
            data_dir=data, dist_dir=default_home() / "dist", nodes=3, port=port, heap="512m", version=version
        )
        three = settings_for(status.url, settings.source.index)
        client = es_client.connect(three.es)
        body = {
            "settings": {"number_of_shards": 3, "number_of_replicas": 1},
            "mappings": indices.source_mapping(three.source, ["node"]),
        }
        es_client.create_index(client, three.source.index, body)
        client.raw.cluster.health(wait_for_status="green", timeout="120s")
        load.load_documents(
            client, three.source, three.source.index, simulate.simulate_documents(spec), extra_keywords=["node"]
        )
        single = es_client.connect(settings.es)
        got = scan_surprise(client, three, metrics, ends)  # the warm-ups, and the results compared
        want = scan_surprise(single, settings, metrics, ends)
        seconds: dict[str, list[float]] = {"three": [], "one": []}
        index = settings.source.index
        for _ in range(repeats):
            seconds["three"].append(cold(client, index, lambda: scan_surprise(client, three, metrics, ends))[0])
            seconds["one"].append(cold(single, index, lambda: scan_surprise(single, settings, metrics, ends))[0])
        report(
            "3 nodes (3 shards, 1 replica) / 1 node, one-scan backfill",
            statistics.median(seconds["three"]),
            statistics.median(seconds["one"]),
            f"same results: {_same(got, want)}, median of {repeats} runs each after one, taking turns",
        )
    finally:
        stop_cluster(data)
        shutil.rmtree(data, ignore_errors=True)


HOSTS, COLUMNS = 24, 38  # the SMD development set's shape
HOSTS_HOURS = (presets.HOST_SCALE + timedelta(hours=2)) // timedelta(hours=1)  # the preset's scale window and the run's
HOSTS_EVERY = timedelta(minutes=5)
HOSTS_STEPS = ("narrow", "wide")
DAY = timedelta(days=1)


def hosts_settings(url: str, index: str, **extra: Any) -> Settings:
    """The configuration `atlas init --preset hosts --interval 5m` writes, on `index`."""
    chosen = {**presets.preset_overrides("hosts", HOSTS_EVERY), **extra}
    return load_settings(None, {"es.urls": [url], "source.index": index, "es.request_timeout": "30m", **chosen})


def host_documents(hosts: int, columns: int, every: timedelta, seed: int = 0) -> Iterator[dict[str, Any]]:
    """HOSTS_HOURS of host-shaped documents from START, one per column every `every`: metric = the host, series =
    the column; a tenth of the columns sit at 0 (no spread: zscore leaves them out), the others wander around their
    own level with their own noise."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(0.0, 100.0, (hosts, columns))
    spread = rng.uniform(0.1, 5.0, (hosts, columns))
    level[:, ::10] = spread[:, ::10] = 0.0
    names = [f"host-{h:02d}" for h in range(hosts)]
    cols = [f"col-{c:05d}" for c in range(columns)]
    for step in range(timedelta(hours=HOSTS_HOURS) // every):
        stamp = format_instant(START + step * every)
        values = (level + spread * rng.standard_normal((hosts, columns))).tolist()
        for h, host in enumerate(names):
            for c, col in enumerate(cols):
                yield {
                    "_id": f"{host}|{col}|{step}",
                    "@timestamp": stamp,
                    "metric": host,
                    "series": col,
                    "value": values[h][c],
                }


def hosts_reference(
    settings: Settings, metrics: Sequence[str], aggs: dict[str, Any], found: dict[str, list[float]]
) -> None:
    """Each series' surprise at the last bucket of a bare answer (median of the baseline_window values before it,
    population std of the std_window ones), into `found` by metric; none where the std is 0 or nothing precedes."""
    s = settings.surprise
    for i, metric in enumerate(metrics):
        for bucket in aggs.get(f"m{i}", {}).get("series", {}).get("buckets", []):
            hours = [h.get("x", {}).get("value") for h in bucket["hours"]["buckets"]]
            values = np.array([v for v in hours if v is not None], dtype=np.float64)
            if hours[-1] is None or len(values) < 2:
                continue
            before = values[:-1]
            sd = float(np.std(before[-s.std_window :]))
            if sd > 0:
                found.setdefault(metric, []).append(
                    abs(values[-1] - float(np.median(before[-s.baseline_window :]))) / sd
                )


def counted_searches(action: Callable[[], Any]) -> int:
    """How many searches `action` sends (es_client.search counted for the time of one call)."""
    sent = 0
    search = es_client.search

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal sent
        sent += 1
        return search(*args, **kwargs)

    es_client.search = counting
    try:
        action()
    finally:
        es_client.search = search
    return sent


def steady(action: Callable[[], T]) -> T:
    """`action`, again after a pause while the node refuses it for its buckets: the node is shared, and other
    people's tests lower search.max_buckets for a while."""
    for _ in range(60):
        try:
            return action()
        except EsQueryRejected as exc:
            if not is_too_many_buckets(exc):
                raise
            time.sleep(5)
    return action()


def whole_index_checks(client: es_client.EsClient, settings: Settings) -> None:
    """The source checks a run sent before: a filter aggregation per field over every document of the index, and
    the source summary (metrics, their series counts, first and last document) for the metric names."""
    source = settings.source
    fields = [source.time_field, *source.series_fields, source.metric_field, source.value_field]
    aggs = {f"f{i}": {"filter": {"exists": {"field": name}}} for i, name in enumerate(fields)}
    body = {"size": 0, "track_total_hits": True, "query": {"match_all": {}}, "aggs": aggs}
    es_client.search(client, source.index, body)
    es_client.search(client, source.index, build_source_summary(source))


def bench_hosts_run(settings: Settings, end: datetime, what: str, repeats: int, scale: bool = True) -> None:
    """One 5-minute run's surprise search (compute_window_surprise, as `atlas run` asks it: the series count, then
    the batches or parts it plans) against the bare aggregation of the same buckets (the run's span) and, with
    `scale`, of the whole day, each from an empty request cache, taking turns `repeats` times; the medians."""
    client = es_client.connect(settings.es)
    index = settings.source.index
    metrics = resolve_metrics(client, settings)
    plan = plan_requests(client, settings, metrics, [end])
    per_series = window_buckets_per_series(settings)
    got = compute_window_surprise(client, settings, metrics, end)  # warm-up, and the answer compared
    series = {r.metric: r.series_count for r in got}
    listed = {m: len(list_series(client, settings, m, end - per_series * HOSTS_EVERY, end)) for m in plan.parted}

    def bodies(start: datetime | None) -> list[tuple[Sequence[str], dict[str, Any]]]:
        """The bare requests and their metrics: atlas's batches, and each metric atlas asks in parts in as many
        hash partitions of its series."""
        found: list[tuple[Sequence[str], dict[str, Any]]] = [
            (batch, bare_body(settings, batch, end, start)) for batch in plan.batches
        ]
        for metric in plan.parted:
            parts = -(-listed[metric] // max(1, DEFAULT_BUDGET.buckets // per_series))  # as plan.split_keys
            found += [([metric], bare_body(settings, [metric], end, start, (i, parts))) for i in range(parts)]
        return found

    span, day = bodies(None), bodies(end - DAY)
    reference: dict[str, list[float]] = {}
    for group, body in span:
        x_only = "aggregations.*.series.buckets.hours.buckets.x"
        answer = steady(functools.partial(es_client.search, client, index, body, x_only))
        hosts_reference(settings, group, answer.get("aggregations", {}), reference)
    p = float(settings.surprise.percentiles[0])
    want = {m: (len(v), exact_percentile(np.sort(v), p)) for m, v in reference.items()}
    equal = sorted(want) == sorted(series) and all(
        want[r.metric][0] == r.series_count and math.isclose(want[r.metric][1], r.percentiles[p] or 0.0, rel_tol=1e-9)
        for r in got
    )

    def run() -> None:
        compute_window_surprise(client, settings, metrics, end)

    planned = {counted_searches(run)}
    sent: set[int] = set()

    def source_checks() -> None:  # as job.run_once and job._process ask them
        check_source_fields(client, settings)
        resolve_metrics(client, settings, (window_range(settings.surprise, end).fetch_start, end))

    def bare(requests: list[tuple[Sequence[str], dict[str, Any]]]) -> float:
        search = functools.partial(cold, client, index, es_client.search, client, index)
        return sum(steady(functools.partial(search, b, "took"))[0] for _, b in requests)

    seconds: dict[str, list[float]] = {"atlas": [], "span": [], "day": [], "checks": [], "whole": []}
    for _ in range(repeats):
        for _ in range(10):  # more requests than planned: another user of the node lowered search.max_buckets
            took, count = cold(client, index, counted_searches, run)
            if count in planned:
                break
            time.sleep(10)
        seconds["atlas"].append(took)
        sent.add(count)
        seconds["span"].append(bare(span))
        if scale:
            seconds["day"].append(bare(day))
            seconds["checks"].append(cold(client, index, source_checks)[0])
            seconds["whole"].append(cold(client, index, whole_index_checks, client, settings)[0])
    median = {k: statistics.median(v) for k, v in seconds.items() if v}
    detail = (
        f"{what}, {sum(series.values())} series scored; atlas {'/'.join(map(str, sorted(sent)))} requests,"
        f" bare {len(span)};"
        f" equal to 1e-9: {equal}; median of {repeats}"
    )
    report(
        f"5-min run {what}: atlas / bare, the run's {per_series} buckets per series",
        median["atlas"],
        median["span"],
        detail,
    )
    if scale:
        report(
            f"5-min run {what}: atlas / bare over 24 h ({DAY // HOSTS_EVERY} buckets per series)",
            median["atlas"],
            median["day"],
            f"bare in {len(day)} requests",
        )
        report(
            f"5-min run {what}: the run's source checks / its surprise search",
            median["checks"],
            median["atlas"],
            "check_source_fields (a document with each field) + resolve_metrics (the metrics of the run's range)",
        )
        report(
            f"5-min run {what}: source checks over the whole index (before) / the run's",
            median["whole"],
            median["checks"],
            "the requests of commit 3aeac4c: filter aggregations and the source summary over every document",
        )


def bench_hosts5m(url: str, repeats: int, wide: int, keep: bool, which: Sequence[str] = HOSTS_STEPS) -> None:
    """`--parts hosts5m`: the hosts preset at 5 minutes on 24 hosts x 38 columns of 1-minute documents (step
    `narrow`), then on one host of `wide` columns of 5-minute ones (step `wide`); the indices are deleted at the end
    unless `keep`."""
    end = START + timedelta(hours=HOSTS_HOURS)
    steps = {
        "narrow": (f"{HOSTS} hosts x {COLUMNS} columns", "h1-bench-hosts5m", HOSTS, COLUMNS, timedelta(minutes=1)),
        "wide": (f"1 host x {wide} columns", f"h1-bench-hosts5m-{wide}", 1, wide, HOSTS_EVERY),
    }
    for label, index, hosts, columns, every in (steps[name] for name in which):
        settings = hosts_settings(url, index)
        client = es_client.connect(settings.es)
        docs = hosts * columns * (timedelta(hours=HOSTS_HOURS) // every)
        try:
            if not es_client.index_exists(client, index):
                load.load_documents(client, settings.source, index, host_documents(hosts, columns, every))
            what = f"({label}, {docs} docs, one per {format_duration(every)})"
            bench_hosts_run(settings, end, what, repeats)
            # the same run with the std over the baseline's hour (no day's scale): what the day's std costs
            bench_hosts_run(
                hosts_settings(url, index, **{"surprise.scale_window": None}),
                end,
                f"{what}, scale_window null",
                repeats,
                scale=False,
            )
        finally:
            if not keep:
                es_client.delete_index(client, index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:9250")
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--cluster-port", type=int, default=9403)
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument(
        "--parts", nargs="+", choices=PARTS, default=DEFAULT_PARTS, help="what to measure [all but hosts5m]"
    )
    parser.add_argument("--loop-windows", type=int, help="time the per-window loop on this many windows [all]")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="runs of each ingest, one-scan, series and 3-node timing; medians reported [3]",
    )
    parser.add_argument("--hosts-wide", type=int, default=10_000, help="hosts5m: columns of the one-host step [10000]")
    parser.add_argument(
        "--hosts-steps", nargs="+", choices=HOSTS_STEPS, default=HOSTS_STEPS, help="hosts5m: which steps [both]"
    )
    parser.add_argument("--keep-hosts-indices", action="store_true", help="hosts5m: keep its two indices")
    args = parser.parse_args()
    parts = set(args.parts) - ({"cluster"} if args.skip_cluster else set())
    scale = SCALES[args.scale]
    spec = simulate.SimulationSpec(
        metrics=scale.metrics, queries=scale.queries, nodes=scale.nodes, hours=scale.hours, start=START
    )
    index = f"h1-bench-{args.scale}"
    settings = settings_for(args.url, index)
    client = es_client.connect(settings.es)
    server = client.server  # Elasticsearch or OpenSearch: the 3-node part starts nodes of the same server
    cluster_version = f"opensearch-{server.number}" if server.is_opensearch else server.number
    if "cluster" in parts and cluster_version not in DISTRIBUTIONS:
        parser.error(f"the 3-node part runs {server.title} nodes, which atlas es start cannot: add --skip-cluster")
    metrics = [simulate.metric_name(m) for m in range(scale.metrics)]
    first = START + settings.surprise.window + settings.surprise.baseline_window * settings.surprise.interval
    ends = [
        first + timedelta(hours=h)
        for h in range(int((START + timedelta(hours=scale.hours) - first) / timedelta(hours=1)) + 1)
    ]
    docs = scale.metrics * scale.queries * scale.nodes * scale.hours
    if "ingest" in parts:
        if es_client.index_exists(client, index):
            es_client.delete_index(client, index)
        with tempfile.TemporaryDirectory(prefix="h1-bench-") as work:
            docs = bench_ingest(args.url, settings, spec, Path(work), args.repeats)
    elif parts & {"backfill", "hourly", "cluster"} and not es_client.index_exists(client, index):
        loaded = load.load_documents(
            client, settings.source, index, simulate.simulate_documents(spec), extra_keywords=["node"]
        )
        rows.append(
            (
                "atlas simulate ingest",
                "-",
                f"{loaded.seconds:.1f} s",
                f"{loaded.docs_per_second:.0f} docs/s",
                f"{loaded.indexed} docs",
            )
        )
    series = scale.metrics * scale.queries
    if "backfill" in parts:
        bench_backfill(settings, metrics, ends, docs, series, args.loop_windows, args.repeats)
    if "hourly" in parts:
        bench_hourly(args.url, settings, metrics, ends[-scale.run_windows :], scale.queries)
    if "series" in parts:
        bench_series(args.url, scale, args.repeats)
    if "cluster" in parts:
        bench_cluster(args.cluster_port, cluster_version, settings, spec, metrics, ends, args.repeats)
    if "hosts5m" in parts:
        bench_hosts5m(args.url, args.repeats, args.hosts_wide, args.keep_hosts_indices, args.hosts_steps)
    command = f"python bench/performance.py --scale {args.scale} --parts {' '.join(args.parts)}"
    command += f" --repeats {args.repeats}"
    if "hosts5m" in parts:
        command += f" --hosts-steps {' '.join(args.hosts_steps)} --hosts-wide {args.hosts_wide}"
    print(f"\n`{command}` on {os.cpu_count()} cores, {server.title}\n")
    print("| measure | ratio | a | b | what |\n| --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()

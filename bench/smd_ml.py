"""Elastic ML (6.8.23, trial licence) as a peer of bench/server_metrics.py on SMD (`--peers ml`).

The node is bench/elastic_ml.py's (start_ml_node: its own port, data dir and, with the default `--ml-sandbox off`,
the private distribution copy whose ML programs start without their seccomp filter; see that module's docstring).
Per machine one anomaly detection job, the multi-metric job Kibana's wizard makes for one host's columns:

  bucket_span 5m, detector mean(value) with partition_field_name column, influencer column

`partition` (not `by`) because the 38 columns are 38 different quantities (CPU, memory, disk, network): each gets
its own model and its own normalisation, as the wizard's "split data" does; `column` is the influencer because it
is the only field that varies within one host's job and because it names the columns behind a bucket (the
HitRate@150% column weights are the bucket's record scores per column). No index and no datafeed: the job is fed by
its post-data API (`POST _xpack/ml/anomaly_detectors/<job>/_data`) in time order, train rows then test rows, row i
at the harness's origin + i minutes, as what a datafeed with a 5-minute date_histogram aggregation sends (Elastic's
advice for speed): per 5 rows and column one record `{"time": epoch s of the last row, "column": "c01", "value":
mean of the 5 rows, "doc_count": 5}` (summary_count_field_name doc_count; for mean(value) the same input as the
five rows). One record per row and column ran at about 2,500 records a second here, 12 minutes a machine. Then the
job is closed (which flushes it) and its buckets are read with their records. A job already closed with all its records
(from an earlier run on the same node data dir) is read again, with the seconds it took then.

A bucket [t, t + 5m) is a detection when its score reaches Elastic's own severity cut, fixed in advance and never
chosen on the labels: 75 ("critical") or 50 ("major"); the score is the bucket's anomaly_score (rows `ml ... bucket
critical|major`: the overall score of Kibana's swimlane) or the highest record_score of its columns (rows `ml ...
record critical|major`: the anomalies table's severity). It predicts the harness's window end of the step that
holds minute t; only steps that overlap the test rows are scored. The seconds are the job's (open, feed, close,
read), summed over machines, without the node's start.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from elastic_ml import native_failure, request, start_ml_node
from smd import COLUMNS, ORIGIN, ROW, Detection, Machine, SmdError, read_machine, scored_steps, step_of_row

from atlas import es_client
from atlas.clock import format_instant
from atlas.embedded import default_home, stop_cluster
from atlas.errors import AtlasError
from atlas.settings import load_settings

BUCKET_SPAN = timedelta(minutes=5)
CUTS = {"critical": 75.0, "major": 50.0}  # Elastic's anomaly score severities
SOURCES = ("bucket", "record")  # the bucket's anomaly_score, or the highest record_score in it
ROWS_PER_POST = 5000  # 38,000 records (about 3 MB) per post-data request
BUCKET_ROWS = BUCKET_SPAN // ROW


@dataclass(frozen=True)
class MlOptions:
    """Where the ML node runs: its HTTP port, heap, data dir, private distribution and sandbox (elastic_ml.py)."""

    port: int = 9440
    heap: str = "1g"
    data: Path = default_home() / "ml-bench-smd"
    dist: Path = default_home() / "dist-ml"
    sandbox: str = "off"
    keep_node: bool = False


@dataclass(frozen=True)
class Bucket:
    """One 5-minute bucket's result: its start, anomaly score and the record score of each column in it."""

    start: datetime
    score: float
    columns: Mapping[str, float]


def job_id(machine: str) -> str:
    return f"atlas-smd-{machine}"


def job_body(machine: str) -> dict[str, Any]:
    """The multi-metric job of one host: mean(value) partitioned by column, influencer column, 5-minute buckets."""
    return {
        "description": f"atlas bench: SMD {machine}, mean(value) partition column",
        "analysis_config": {
            "bucket_span": f"{BUCKET_SPAN // ROW}m",
            "detectors": [{"function": "mean", "field_name": "value", "partition_field_name": "column"}],
            "influencers": ["column"],
            "summary_count_field_name": "doc_count",
        },
        "data_description": {"time_field": "time", "time_format": "epoch"},
    }


def records(machine: Machine, first: int = 0, rows: int | None = None) -> Iterator[str]:
    """The post-data records of rows [first, first + rows) of the machine (train rows then test rows; `first` a
    multiple of 5), one JSON object per line: per 5-minute bucket and column the mean of its rows and their count,
    at the time of its last row (row i at ORIGIN + i minutes); the columns of a bucket in order."""
    values = np.concatenate([machine.train, machine.test])
    last = len(values) if rows is None else min(len(values), first + rows)
    origin = int(ORIGIN.timestamp())
    for start in range(first, last, BUCKET_ROWS):
        part = values[start : min(start + BUCKET_ROWS, last)]
        at = origin + 60 * (start + len(part) - 1)
        for column, value in zip(COLUMNS, part.mean(axis=0).tolist(), strict=True):
            yield json.dumps({"time": at, "column": column, "value": value, "doc_count": len(part)})


def run_job(client: es_client.EsClient, machine: Machine, log: Path) -> tuple[list[Bucket], float, int]:
    """Create, open, feed and close one machine's job and read its buckets: (buckets, seconds, records processed)."""
    base = f"/_xpack/ml/anomaly_detectors/{job_id(machine.name)}"
    expected = len(list(records(machine)))
    done = finished(client, base, expected)
    if done is not None:
        return read_buckets(client, base, machine, min(CUTS.values())), done, expected
    request(client, "POST", f"{base}/_close", force="true", ignore=(404, 409))
    request(client, "DELETE", base, force="true", ignore=404)
    request(client, "PUT", base, job_body(machine.name))
    offset = log.stat().st_size if log.is_file() else 0
    started = time.perf_counter()
    try:
        request(client, "POST", f"{base}/_open", timeout="2m")
        for first in range(0, machine.rows, ROWS_PER_POST):
            request(client, "POST", f"{base}/_data", "\n".join(records(machine, first, ROWS_PER_POST)) + "\n")
        request(client, "POST", f"{base}/_close", timeout="30m")
    except AtlasError as exc:
        lines = "\n  ".join(native_failure(log, offset)) or "(no native process lines in the log)"
        raise SmdError(f"Elastic ML job {job_id(machine.name)}: {exc}\nnode log {log}:\n  {lines}") from exc
    stats = request(client, "GET", f"{base}/_stats")["jobs"][0]
    processed = int(stats["data_counts"]["processed_record_count"])
    if stats["state"] == "failed" or processed == 0:
        lines = "\n  ".join(native_failure(log, offset))
        raise SmdError(f"Elastic ML job {job_id(machine.name)} ended {stats['state']}, {processed} records; {lines}")
    buckets = read_buckets(client, base, machine, min(CUTS.values()))
    seconds = time.perf_counter() - started
    request(client, "POST", f"{base}/_update", {"custom_settings": {"atlas_bench_seconds": seconds}})
    return buckets, seconds, processed


def finished(client: es_client.EsClient, base: str, expected: int) -> float | None:
    """The seconds a job of this name took when it is closed with all `expected` records processed (a run before
    this one, over the same machine), else None: such a job's results are read again, not recomputed."""
    jobs = request(client, "GET", base, ignore=404).get("jobs", [])
    stats = request(client, "GET", f"{base}/_stats", ignore=404).get("jobs", [])
    if not jobs or not stats or stats[0]["state"] != "closed":
        return None
    seconds = jobs[0].get("custom_settings", {}).get("atlas_bench_seconds")
    if seconds is None or int(stats[0]["data_counts"]["processed_record_count"]) != expected:
        return None
    return float(seconds)


def read_buckets(client: es_client.EsClient, base: str, machine: Machine, floor: float) -> list[Bucket]:
    """From the first step that overlaps the test rows on: the buckets scoring at least `floor` with their records
    (`expand`), and the buckets of the records scoring at least `floor` (their own anomaly score is below `floor`,
    kept as 0), in time order."""
    start = ORIGIN + (machine.test_start - ORIGIN) // BUCKET_SPAN * BUCKET_SPAN
    window = {"start": format_instant(start), "end": format_instant(machine.test_end), "sort": "timestamp"}
    scores: dict[datetime, float] = {}
    columns: dict[datetime, dict[str, float]] = {}
    for bucket in _pages(
        client, f"{base}/results/buckets", "buckets", window | {"anomaly_score": floor, "expand": True}
    ):
        at = _instant(bucket["timestamp"])
        scores[at] = float(bucket["anomaly_score"])
        _add_records(columns.setdefault(at, {}), bucket.get("records", []))
    for record in _pages(client, f"{base}/results/records", "records", window | {"record_score": floor}):
        _add_records(columns.setdefault(_instant(record["timestamp"]), {}), [record])
    return [Bucket(at, scores.get(at, 0.0), columns[at]) for at in sorted(columns)]


def _pages(client: es_client.EsClient, path: str, key: str, body: Mapping[str, Any]) -> Iterator[Any]:
    """Every result of a results endpoint, 1,000 a page."""
    seen = 0
    while True:
        answer = request(client, "POST", path, dict(body) | {"desc": False, "page": {"from": seen, "size": 1000}})
        yield from answer[key]
        seen += len(answer[key])
        if not answer[key] or seen >= int(answer["count"]):
            return


def _instant(millis: Any) -> datetime:
    return datetime.fromtimestamp(int(millis) / 1000, tz=UTC)


def _add_records(columns: dict[str, float], records: Sequence[Mapping[str, Any]]) -> None:
    for record in records:
        column = str(record["partition_field_value"])
        columns[column] = max(columns.get(column, 0.0), float(record["record_score"]))


def detection(machine: Machine, buckets: Sequence[Bucket], source: str, cut: float, step: timedelta) -> Detection:
    """The buckets whose score of `source` reaches `cut` (bucket: its anomaly_score; record: its highest record
    score) as the window ends of the harness's steps that hold their first minute, the steps that overlap the test
    rows only; columns weigh by their record scores."""
    scored = set(scored_steps(machine, step))
    influence: dict[datetime, dict[str, float]] = {}
    for bucket in buckets:
        score = bucket.score if source == "bucket" else max(bucket.columns.values(), default=0.0)
        if score < cut:
            continue
        minute = np.array([(bucket.start - ORIGIN) // ROW], dtype=np.int64)
        end = ORIGIN + int(step_of_row(minute, step)[0]) * step
        if end not in scored:
            continue
        here = influence.setdefault(end, {})
        for column, weight in bucket.columns.items():
            here[column] = here.get(column, 0.0) + weight
    return Detection(frozenset(influence), {t: w for t, w in influence.items() if w})


def run_ml(
    data: Path, names: Sequence[str], step: timedelta, options: MlOptions
) -> dict[str, tuple[dict[str, Detection], float]]:
    """Elastic ML's rows on the machines: {"ml ... critical" / "ml ... major": ({machine: Detection}, seconds)}.
    Starts the node (stopped at the end unless options.keep_node)."""
    try:
        status, log = start_ml_node(options.sandbox, options.dist, options.data, options.port, options.heap)
    except AtlasError as exc:
        raise SmdError(f"Elastic ML node: {exc}") from exc
    found: dict[str, tuple[dict[str, Detection], float]] = {}
    try:
        client = es_client.connect(load_settings(None, {"es.urls": [status.url], "es.request_timeout": "30m"}).es)
        for name in names:
            machine = read_machine(data, name)
            buckets, seconds, processed = run_job(client, machine, log)
            for source in SOURCES:
                for label, cut in CUTS.items():
                    variant = f"ml mean/column 5m {source} {label}"
                    detections, total = found.get(variant, ({}, 0.0))
                    detections[name] = detection(machine, buckets, source, cut, step)
                    found[variant] = (detections, total + seconds)
            print(f"ml: {name}: {processed} records in {seconds:.0f} s", file=sys.stderr, flush=True)
    finally:
        if not options.keep_node:
            stop_cluster(options.data)
    return found

"""Elastic ML as the peer: run Elastic's own anomaly detection (6.8.23, trial licence) on the blog's simulated data and
score its detections with atlas's evaluation rules (atlas/evaluate.py), seed by seed.

    .venv/bin/python bench/elastic_ml.py --seeds 1 2 3 4 5 --port 9440 --data /tmp/ml-bench --dist /tmp/ml-dist

For each seed the script indexes `atlas simulate --scenario blog` data (5 metrics x --queries x --nodes x --hours,
reused when the index is already complete), runs one anomaly detection job per --jobs kind over every hour
(bucket_span 1h, a datafeed with an end time), reads the job's results and turns them into per-(metric, hour)
detections: a metric is anomalous in hour T when a record of its partition (max record_score) or its `metric`
influencer (influencer_score) reaches the cut. Detections are scored against the truth file exactly as
`atlas evaluate` scores atlas's own anomalies, over the same window ends atlas evaluates (after its default warm-up).
With --atlas (the default) atlas itself, at its default settings, is backfilled and scored on the same index.
  population   mean(value) over query, partition metric: which queries are unusual among all queries this hour
  multimetric  mean(value) by query, partition metric: each query's own history, one model per series

Why --ml-sandbox defaults to `off`: the 6.8.23 ML binaries install their own seccomp filter (not Elasticsearch's
bootstrap.system_call_filter, and no setting turns it off), written for the glibc of 2018. On glibc 2.33 or later
mkfifo() is the mknodat syscall, which the filter refuses (EACCES), so `autodetect` exits 1 before it opens its
named pipes (fixed in ml-cpp 7.12.1); on glibc 2.34 or later pthread_create() calls clone3 and rt_sigprocmask, also
refused, so autodetect aborts at its first thread (fixed in 7.17.5 and 8.2). Debian bookworm has glibc 2.36: with
`--ml-sandbox shipped` the job fails to open and the script prints the node's log lines that say so. With `off` it
runs on a private copy of the distribution (--dist) in which `autodetect` and `normalize` are started through a
small wrapper that preloads a shim making prctl(PR_SET_SECCOMP) answer EINVAL, as on a kernel without seccomp:
the same binaries and models, without their system call sandbox. It needs a C compiler (`cc`).
Times are from one run on a shared machine.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from atlas import es_client, evaluate, findings, job, simulate
from atlas.clock import format_instant
from atlas.distributions import distribution, ensure_distribution
from atlas.embedded import ClusterStatus, default_home, start_cluster, stop_cluster
from atlas.embedded_nodes import CLUSTER_NAME, NodeOptions
from atlas.errors import AtlasError, EsQueryRejected, ToolMissing
from atlas.es_errors import translated_errors
from atlas.indices import result_indices, setup_indices
from atlas.ingest import load
from atlas.records import Anomaly, Severity
from atlas.settings import Settings, load_settings

VERSION = "6.8.23"
STEP = timedelta(hours=1)
ML_BIN = Path("modules/x-pack-ml/platform/linux-x86_64/bin")
JOB_KINDS = ("population", "multimetric")
SOURCES = ("record", "influencer")
_SANDBOX_MARKER = ".atlas-ml-seccomp-off"
_SHIM_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* prctl() as usual, except PR_SET_SECCOMP, which answers EINVAL as on a kernel built without seccomp. */
int prctl(int option, ...) {
    va_list ap;
    va_start(ap, option);
    unsigned long a2 = va_arg(ap, unsigned long), a3 = va_arg(ap, unsigned long);
    unsigned long a4 = va_arg(ap, unsigned long), a5 = va_arg(ap, unsigned long);
    va_end(ap);
    if (option == PR_SET_SECCOMP) {
        errno = EINVAL;
        return -1;
    }
    return (int)syscall(SYS_prctl, option, a2, a3, a4, a5);
}
"""
# Log lines that say why a native ML process did not start or stopped.
_NATIVE_FAILURE = re.compile(
    r"CDetachedProcessSpawner|Failed to launch|Caused by|stopped unexpectedly|Cannot open|"
    r"CppLogMessageHandler.*(?:WARN|ERROR|FATAL)|\]\[(?:ERROR|FATAL)"
)


@dataclass(frozen=True)
class JobRun:
    """One finished job: per-(metric, window end) max score of each result source, and how long it ran."""

    kind: str
    scores: Mapping[str, Mapping[tuple[str, datetime], float]]
    seconds: float
    records_processed: int


def prepare_distribution(sandbox: str, dist_dir: Path) -> Path:
    """The dist_dir to start nodes from: atlas's shared one (`shipped`), or a private copy whose ML programs run
    without their seccomp filter (`off`); returns it."""
    shared = default_home() / "dist"
    home = ensure_distribution(distribution(VERSION), shared)
    if sandbox == "shipped":
        return shared
    target = dist_dir / home.name
    if (target / _SANDBOX_MARKER).is_file():
        return dist_dir
    cc = shutil.which("cc")
    if cc is None:
        raise ToolMissing("cc not found: --ml-sandbox off compiles a small shim (apt-get install gcc)")
    dist_dir.mkdir(parents=True, exist_ok=True)
    dist_dir.chmod(0o755)  # the node runs as nobody when atlas runs as root
    partial = Path(tempfile.mkdtemp(prefix=".copy-", dir=dist_dir))
    partial.chmod(0o755)
    try:
        copy = partial / home.name
        shutil.copytree(home, copy, symlinks=True)
        lib = copy / ML_BIN.parent / "lib"
        source = partial / "noseccomp.c"
        source.write_text(_SHIM_C, encoding="utf-8")
        shim = lib / "libnoseccomp.so"
        proc = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(shim), str(source)], capture_output=True)
        if proc.returncode != 0:
            raise ToolMissing(f"cc could not build the seccomp shim: {proc.stderr.decode(errors='replace')[:300]}")
        shim.chmod(0o755)
        final_bin, final_shim = target / ML_BIN, target / ML_BIN.parent / "lib" / shim.name
        for program in ("autodetect", "normalize"):
            binary = copy / ML_BIN / program
            binary.rename(binary.with_name(program + ".bin"))
            binary.write_text(
                f'#!/bin/sh\nLD_PRELOAD="{final_shim}" exec "{final_bin / program}.bin" "$@"\n', encoding="utf-8"
            )
            binary.chmod(0o755)
        (copy / _SANDBOX_MARKER).write_text("autodetect and normalize start without their seccomp filter\n")
        if target.exists():
            shutil.rmtree(target)
        copy.rename(target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return dist_dir


def request(client: es_client.EsClient, method: str, path: str, body: Any = None, **params: Any) -> Any:
    """One REST call (6.8's _xpack/ml endpoints have no client method here); errors become AtlasError."""
    with translated_errors(client, f"{method} {path}"):
        return client.raw.transport.perform_request(method, path, body=body, params=params or None)


def ensure_data(client: es_client.EsClient, settings: Settings, spec: simulate.SimulationSpec, index: str) -> str:
    """Index the simulated documents of `spec` unless `index` already holds all of them; says which it did."""
    expected = simulate.count_documents(spec)
    held = request(client, "GET", f"/{index}/_count", ignore=404).get("count", 0)
    if held == expected:
        return f"reused {index} ({held} documents)"
    es_client.delete_index(client, index)
    report = load.load_documents(
        client, settings.source, index, simulate.simulate_documents(spec), extra_keywords=["node"]
    )
    return f"indexed {report.indexed} documents into {index} in {report.seconds:.0f} s"


def job_body(kind: str, function: str, feed: str) -> dict[str, Any]:
    """The anomaly detection job of one kind: 1h buckets, one detector, partitioned by metric."""
    split = {"over_field_name": "query"} if kind == "population" else {"by_field_name": "query"}
    analysis: dict[str, Any] = {
        "bucket_span": "1h",
        "detectors": [{"function": function, "field_name": "value", "partition_field_name": "metric", **split}],
        "influencers": ["metric", "query"],
    }
    if feed == "aggregated":
        analysis["summary_count_field_name"] = "doc_count"
    return {
        "description": f"atlas bench: {kind} {function}(value), blog data",
        "analysis_config": analysis,
        "analysis_limits": {"model_memory_limit": "512mb"},
        "data_description": {"time_field": "@timestamp"},
    }


def datafeed_body(job_id: str, index: str, feed: str) -> dict[str, Any]:
    """A datafeed of the raw documents, or of hourly means per metric and query (the same mean, fewer records)."""
    body: dict[str, Any] = {"job_id": job_id, "indices": [index], "query": {"match_all": {}}}
    if feed == "raw":
        return body | {"scroll_size": 5000}
    means = {"value": {"avg": {"field": "value"}}}
    per_query = {"query": {"terms": {"field": "query", "size": 10000}, "aggregations": means}}
    per_metric = {"metric": {"terms": {"field": "metric", "size": 1000}, "aggregations": per_query}}
    hourly = {
        "date_histogram": {"field": "@timestamp", "interval": "1h", "time_zone": "UTC"},
        "aggregations": {"@timestamp": {"max": {"field": "@timestamp"}}, **per_metric},
    }
    # 12 hours per search keeps the buckets of one search (12 x metrics x queries) below search.max_buckets.
    return body | {"aggregations": {"buckets": hourly}, "chunking_config": {"mode": "manual", "time_span": "12h"}}


def native_failure(log: Path, offset: int) -> list[str]:
    """The node log's lines after `offset` that say why a native ML process failed."""
    if not log.is_file():
        return []
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode(errors="replace")
    return [line.strip()[:400] for line in text.splitlines() if _NATIVE_FAILURE.search(line)][:20]


def run_job(
    client: es_client.EsClient, job_id: str, kind: str, index: str, spec: simulate.SimulationSpec, args: Any, log: Path
) -> JobRun:
    """Create, open and feed one job over the whole simulated range, close it, and read its results."""
    base, feed_id = f"/_xpack/ml/anomaly_detectors/{job_id}", f"datafeed-{job_id}"
    request(client, "DELETE", f"/_xpack/ml/datafeeds/{feed_id}", force="true", ignore=404)
    request(client, "DELETE", base, force="true", ignore=404)
    request(client, "PUT", base, job_body(kind, args.function, args.feed))
    request(client, "PUT", f"/_xpack/ml/datafeeds/{feed_id}", datafeed_body(job_id, index, args.feed))
    offset = log.stat().st_size if log.is_file() else 0
    started = time.perf_counter()
    try:
        request(client, "POST", f"{base}/_open", timeout="2m")
    except AtlasError as exc:
        lines = "\n  ".join(native_failure(log, offset)) or "(no native process lines in the log)"
        raise EsQueryRejected(f"job {job_id} did not open: {exc}\nnode log {log}:\n  {lines}") from exc
    end = spec.start + timedelta(hours=spec.hours)
    request(
        client,
        "POST",
        f"/_xpack/ml/datafeeds/{feed_id}/_start",
        start=format_instant(spec.start),
        end=format_instant(end),
    )
    deadline = time.monotonic() + args.timeout
    while request(client, "GET", f"/_xpack/ml/datafeeds/{feed_id}/_stats")["datafeeds"][0]["state"] != "stopped":
        if time.monotonic() > deadline:
            raise EsQueryRejected(f"datafeed {feed_id} still running after {args.timeout} s (--timeout)")
        time.sleep(1.0)
    request(client, "POST", f"{base}/_close", timeout="30m")
    seconds = time.perf_counter() - started
    stats = request(client, "GET", f"{base}/_stats")["jobs"][0]
    if stats["state"] == "failed" or stats["data_counts"]["processed_record_count"] == 0:
        lines = "\n  ".join(native_failure(log, offset))
        raise EsQueryRejected(f"job {job_id} ended {stats['state']} with no data processed; node log:\n  {lines}")
    scores = {source: read_scores(client, base, source, spec.start, end, min(args.cuts)) for source in SOURCES}
    return JobRun(kind, scores, seconds, int(stats["data_counts"]["processed_record_count"]))


def read_scores(
    client: es_client.EsClient, base: str, source: str, start: datetime, end: datetime, floor: float
) -> dict[tuple[str, datetime], float]:
    """Max score per (metric, window end) of one result source, from results scoring at least `floor`.

    A bucket starting at t covers [t, t + 1h): the window that atlas names by its end, t + 1h."""
    found: dict[tuple[str, datetime], float] = {}
    chunk = timedelta(hours=12)  # at most 12 x (500 records or 505 influencers) per page of 10,000
    at = start
    while at < end:
        window = {"start": format_instant(at), "end": format_instant(min(at + chunk, end))}
        page = {"page": {"from": 0, "size": 10000}, "sort": "timestamp", "desc": False}
        if source == "record":
            body = request(client, "POST", f"{base}/results/records", window | page | {"record_score": floor})
            hits = [(r["partition_field_value"], r["timestamp"], r["record_score"]) for r in body["records"]]
        else:
            body = request(client, "POST", f"{base}/results/influencers", window | page | {"influencer_score": floor})
            hits = [
                (r["influencer_field_value"], r["timestamp"], r["influencer_score"])
                for r in body["influencers"]
                if r["influencer_field_name"] == "metric"
            ]
        if body["count"] > 10000:
            raise EsQueryRejected(f"{base}: more than 10,000 {source}s in 12 hours; raise the lowest --cuts")
        for metric, millis, score in hits:
            key = (str(metric), datetime.fromtimestamp(int(millis) / 1000, tz=UTC) + STEP)
            found[key] = max(found.get(key, 0.0), float(score))
        at += chunk
    return found


def detections(scores: Mapping[tuple[str, datetime], float], cut: float) -> list[Anomaly]:
    """Scores at or above `cut` as atlas anomalies (severity as Elastic's: 75 critical, 50 major, else minor)."""
    found = []
    for (metric, end), score in sorted(scores.items()):
        if score >= cut:
            severity: Severity = "high" if score >= 75 else "medium" if score >= 50 else "low"
            found.append(
                Anomaly(metric, 0.0, end, score, 0.0, 0.0, cut, None, severity, f"{metric}|ml|{format_instant(end)}")
            )
    return found


def evaluated_steps(settings: Settings, spec: simulate.SimulationSpec) -> dict[str, list[datetime]]:
    """Each metric's window ends as atlas evaluates the blog: after its default warm-up, to the last hour's end."""
    warm_up = settings.surprise.window + settings.surprise.baseline_window * settings.surprise.interval
    first, last = spec.start + warm_up, spec.start + timedelta(hours=spec.hours)
    ends = [first + k * STEP for k in range((last - first) // STEP + 1)]
    return {simulate.metric_name(m): ends for m in range(spec.metrics)}


def run_atlas(
    url: str, index: str, seed: int, spec: simulate.SimulationSpec, truth: Sequence[Any]
) -> tuple[dict[str, Any], float]:
    """atlas at its defaults on the same index, backfilled over the same window ends: its `all` line and seconds."""
    overrides = {"es.urls": [url], "es.request_timeout": "30m", "source.index": index}
    settings = load_settings(None, overrides | {"results.prefix": f"atlas-bench-ml-{seed}"})
    client = es_client.connect(settings.es)
    names = result_indices(settings.results)
    for name in (names.surprise, names.anomalies, names.state):
        es_client.delete_index(client, name)
    setup_indices(client, settings)
    ends = next(iter(evaluated_steps(settings, spec).values()))
    started = time.perf_counter()
    job.backfill(settings, client, ends[0], ends[-1])
    seconds = time.perf_counter() - started
    scores = findings.evaluate_job(settings, client, truth, ends[0], ends[-1])
    return evaluate.evaluation_json(scores)["all"], seconds


def format_row(seed: int, job: str, source: str, cut: str, line: Mapping[str, Any], seconds: float) -> str:
    """One line of the table, from an `evaluation_json` line."""
    counts = f"{line['events_found']:>6} {line['events_missed']:>7} {line['false_events']:>6}"
    return (
        f"{seed:>4} {job:12} {source:10} {cut:>4} {counts} {line['f1']:>6.3f} {line['point_adjusted']['f1']:>7.3f}"
        f" {seconds:>7.1f}"
    )


def score_rows(
    seed: int, run: JobRun, truth: Sequence[Any], steps: Mapping[str, list[datetime]], cuts: Iterable[float]
) -> list[str]:
    """One table row per result source and cut."""
    rows = []
    for source in SOURCES:
        for cut in cuts:
            scores = evaluate.evaluate(truth, detections(run.scores[source], cut), steps, STEP)
            line = evaluate.evaluation_json(scores)["all"]
            rows.append(format_row(seed, run.kind, source, f"{cut:g}", line, run.seconds))
    return rows


HEADER = f"{'seed':>4} {'job':12} {'score':10} {'cut':>4} {'found':>6} {'missed':>7} {'false':>6} {'f1':>6}"
HEADER += f" {'adj f1':>7} {'run s':>7}"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written, and each option's default."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="simulation seeds")
    parser.add_argument("--queries", type=int, default=100, help="simulated queries (series per metric)")
    parser.add_argument("--nodes", type=int, default=10, help="simulated nodes (documents per series and hour)")
    parser.add_argument("--hours", type=int, default=600, help="simulated hours")
    parser.add_argument("--jobs", nargs="*", choices=JOB_KINDS, default=list(JOB_KINDS), help="job kinds to run")
    parser.add_argument("--function", choices=("mean", "high_mean"), default="mean", help="detector function")
    parser.add_argument("--feed", choices=("aggregated", "raw"), default="aggregated", help="datafeed kind")
    parser.add_argument("--cuts", type=float, nargs="+", default=[50.0, 75.0], help="score cuts (0-100)")
    parser.add_argument("--port", type=int, default=9440, help="HTTP port of the ML node (transport: +100)")
    parser.add_argument("--heap", default="1g", help="JVM heap of the ML node")
    parser.add_argument("--data", type=Path, default=default_home() / "ml-bench", help="node data dir and truth files")
    parser.add_argument(
        "--dist", type=Path, default=default_home() / "dist-ml", help="private distribution copy (--ml-sandbox off)"
    )
    parser.add_argument("--ml-sandbox", choices=("off", "shipped"), default="off", help="see the module docstring")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one datafeed may run")
    parser.add_argument(
        "--atlas", action=argparse.BooleanOptionalAction, default=True, help="also run atlas at its defaults"
    )
    parser.add_argument("--keep-node", action="store_true", help="leave the node running afterwards")
    return parser.parse_args(argv)


def start_ml_node(sandbox: str, dist: Path, data: Path, port: int, heap: str) -> tuple[ClusterStatus, Path]:
    """Start (or find running) the 6.8.23 node with ML enabled on `port`, its data in `data`, from the distribution
    `sandbox` asks for (prepare_distribution); returns its status and the path of its log."""
    dist_dir = prepare_distribution(sandbox, dist.resolve())
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o755)
    options = NodeOptions(settings={"xpack.ml.enabled": True})
    status, _ = start_cluster(data_dir=data, dist_dir=dist_dir, port=port, heap=heap, version=VERSION, options=options)
    return status, data.resolve() / "node-0" / "logs" / f"{CLUSTER_NAME}.log"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    status, log = start_ml_node(args.ml_sandbox, args.dist, args.data, args.port, args.heap)
    try:
        settings = load_settings(None, {"es.urls": [status.url], "es.request_timeout": "30m"})
        client = es_client.connect(settings.es)
        native = request(client, "GET", "/_xpack")["features"]["ml"].get("native_code_info", {})
        print(f"Elasticsearch {status.version} at {status.url}, ML native code {native.get('version')},", end=" ")
        print(f"sandbox {args.ml_sandbox}, feed {args.feed}, function {args.function}", flush=True)
        print(HEADER, flush=True)
        for seed in args.seeds:
            spec = simulate.SimulationSpec(queries=args.queries, nodes=args.nodes, hours=args.hours, seed=seed)
            index = f"atlas-bench-ml-blog-{seed}-{args.queries}x{args.nodes}x{args.hours}"
            print(f"# seed {seed}: {ensure_data(client, settings, spec, index)}", file=sys.stderr, flush=True)
            truth_path = args.data / f"truth-{seed}.csv"
            simulate.write_truth_csv(simulate.truth_intervals(spec), truth_path)
            truth, steps = evaluate.read_truth(truth_path), evaluated_steps(settings, spec)
            for kind in args.jobs:
                run = run_job(client, f"atlas-bench-{kind}-{seed}", kind, index, spec, args, log)
                print("\n".join(score_rows(seed, run, truth, steps, args.cuts)), flush=True)
            if args.atlas:
                line, seconds = run_atlas(status.url, index, seed, spec, truth)
                print(format_row(seed, "atlas", "defaults", "-", line, seconds), flush=True)
    except AtlasError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        if not args.keep_node:
            stop_cluster(args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())

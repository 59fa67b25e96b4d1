"""atlas on real labelled server metrics (SMD), through atlas's real path, with peers beside it.

    python bench/server_metrics.py --data DIR --config atlas.yml [--set KEY=VALUE ...] [--work DIR]
                                   [--layout host|column]
                                   [--url http://127.0.0.1:9250] [--index NAME] [--machines machine-1-2 ...]
                                   [--peers all|none|gaussian|iforest|ml (default: gaussian iforest)]
                                   [--format table|json] [--rerun] [--import-only | --skip-atlas]
                                   [--ml-port 9440 --ml-data DIR --ml-dist DIR --keep-ml-node]

DIR is SMD's `ServerMachineDataset/` directory (the GitHub repository NetManAIOps/OmniAnomaly); nothing of it is
copied into this repository. The harness:
1. converts each machine to atlas CSV in --work (row i at 2024-01-01T00:00:00Z + i minutes, train rows first;
   layout host: metric = machine, series = column c01..c38; layout column: metric = column, series = machine),
   reusing CSVs already written;
2. imports them with `atlas ingest csv` into --index (default smd-<layout>-1m) of the node at --url, skipping
   machines whose documents are all there already; then `atlas setup`, `atlas backfill` over the whole span and
   `atlas anomalies --format json` (`--grouped` by machine in the column layout) with the configuration --config
   and each --set on top of it (atlas's own `--set`), under the result prefix smd-bench and a job named after the
   effective settings (so configurations never mix, and a file and its --set variant that mean the same share one);
3. scores the test rows only with `atlas evaluate`'s rules (bench/smd.py), per machine group and pooled;
4. runs the peers on the same machines with the same scorer (bench/smd_peers.py; `ml`, Elastic ML on a 6.8.23
   node of its own at --ml-port that the bench starts and stops: bench/smd_ml.py), no threshold chosen on labels;
5. prints one table (or JSON) with the time each took.
Machines missing from DIR are reported and skipped; held-out machines are refused by name.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from smd import (
    GROUPS,
    LAYOUTS,
    MACHINES,
    ORIGIN,
    ROW,
    Detection,
    Machine,
    SmdError,
    check_data_dir,
    check_machines,
    missing_parts,
    read_machine,
    score_group,
    write_csv,
)
from smd_ml import MlOptions, run_ml
from smd_peers import PEERS, run_peers

from atlas.clock import format_duration, format_instant, parse_instant
from atlas.errors import AtlasError
from atlas.settings import Settings, load_settings
from atlas.settings_text import effective_settings, parse_assignments

RESULT_PREFIX = "smd-bench"
SERIES_FIELD = {"host": "column", "column": "host"}  # the series field of each layout
ALL_PEERS = (*PEERS, "ml")


def main() -> None:
    args = parse_args()
    try:
        report = run(args)
    except SmdError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)
    if args.format == "json" or args.import_only:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print(format_report(report), end="")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="SMD's ServerMachineDataset directory")
    parser.add_argument("--config", type=Path, required=True, help="the atlas.yml to measure")
    parser.add_argument(
        "--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
        help="a setting on top of --config, as atlas's --set (e.g. surprise.scale_window=288); repeatable",
    )  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path("smd-work"), help="CSVs, derived configs, markers")
    parser.add_argument("--layout", choices=LAYOUTS, default="host")
    parser.add_argument("--url", default="http://127.0.0.1:9250", help="Elasticsearch (the embedded node)")
    parser.add_argument("--index", help="source index [default: smd-<layout>-1m]")
    parser.add_argument("--machines", nargs="+", default=list(MACHINES), help="a subset of the 24 machines")
    parser.add_argument(
        "--peers",
        nargs="+",
        default=list(PEERS),
        help=f"all, none or some of {', '.join(ALL_PEERS)} [default: the quick ones, without ml]",
    )
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument("--rerun", action="store_true", help="backfill again even if this job was done")
    parser.add_argument("--import-only", action="store_true", help="stop after the import")
    parser.add_argument("--skip-atlas", action="store_true", help="the peers only (no conversion, import or atlas)")
    ml = MlOptions()
    parser.add_argument("--ml-port", type=int, default=ml.port, help="HTTP port of the Elastic ML node (peer ml)")
    parser.add_argument("--ml-heap", default=ml.heap, help="JVM heap of the Elastic ML node")
    parser.add_argument("--ml-data", type=Path, default=ml.data, help="the Elastic ML node's data dir")
    parser.add_argument("--ml-dist", type=Path, default=ml.dist, help="its private distribution (bench/elastic_ml.py)")
    parser.add_argument("--ml-sandbox", choices=("off", "shipped"), default=ml.sandbox, help="bench/elastic_ml.py")
    parser.add_argument("--keep-ml-node", action="store_true", help="leave the Elastic ML node running afterwards")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole harness: convert, import, detect with atlas, run the peers, score; returns the report."""
    names = check_machines(args.machines)
    check_data_dir(args.data)
    peers = _peer_names(args.peers)
    overrides = assignments(args.assignments)
    step = measured_step(args.config, overrides)
    missing = {n: missing_parts(args.data, n) for n in names}
    present = [n for n in names if not missing[n]]
    for name in names:
        if missing[name]:
            _log(f"{name}: missing ({', '.join(missing[name])}), skipped")
    if not present:
        raise SmdError(f"{args.data}: none of the machines asked for is there")
    args.work.mkdir(parents=True, exist_ok=True)
    index = args.index or f"smd-{args.layout}-1m"
    if args.skip_atlas:
        machines, timings = [labels_only(read_machine(args.data, n)) for n in present], {}
    else:
        machines, timings = prepare(args, present, index)
    if args.import_only:
        return {"import": timings, "missing": sorted(n for n in names if missing[n])}
    detectors: dict[str, tuple[dict[str, Detection], float]] = {}
    jobs: list[str] = []
    if not args.skip_atlas:
        found, seconds, jobs = atlas_detections(args, index, machines, step, overrides)
        detectors[f"atlas ({' '.join([args.config.name, *args.assignments])})"] = (found, seconds)
    if set(peers) - {"ml"}:
        for name, (detections, seconds) in run_peers(args.data, [m.name for m in machines], step, peers).items():
            detectors[name] = (detections, seconds)
    if "ml" in peers:
        options = MlOptions(
            args.ml_port, args.ml_heap, args.ml_data, args.ml_dist, args.ml_sandbox, args.keep_ml_node
        )  # fmt: skip
        detectors |= run_ml(args.data, [m.name for m in machines], step, options)
    rows = []
    for detector, (detections, seconds) in detectors.items():
        cache: dict[str, Any] = {}
        for group, members in _groups(machines).items():
            rows.append(
                {"detector": detector, "group": group, "seconds": round(seconds, 1)}
                | score_group(members, detections, step, cache)
            )
    return {
        "config": str(args.config),
        "set": list(args.assignments),
        "jobs": jobs,
        "layout": args.layout,
        "index": index,
        "step": format_duration(step),
        "machines": [m.name for m in machines],
        "missing": sorted(n for n in names if missing[n]),
        "import": timings,
        "rows": rows,
    }


def prepare(args: argparse.Namespace, names: Sequence[str], index: str) -> tuple[list[Machine], dict[str, Any]]:
    """Write each machine's CSV (unless there) and import it unless the index holds all its documents, one machine
    at a time (the development and unseen groups taking turns, so an interrupted import leaves whole machines of
    both); returns the machines' labels only."""
    csv_dir = args.work / f"csv-{args.layout}"
    csv_dir.mkdir(exist_ok=True)
    config = args.work / f"ingest-{args.layout}.yml"
    config.write_text(yaml.safe_dump(_source_section(args.layout, index, args.url, [])), encoding="utf-8")
    counts = _index_counts(args.url, index, args.layout)
    machines, imported = [], {}
    timings: dict[str, Any] = {"convert_seconds": 0.0, "import_seconds": 0.0}
    for name in _taking_turns(names):
        started = time.perf_counter()
        machine = read_machine(args.data, name)
        path = csv_dir / f"{name}.csv"
        if not path.is_file():
            write_csv(machine, args.layout, path)
        timings["convert_seconds"] += time.perf_counter() - started
        if counts.get(name, 0) != machine.rows * machine.train.shape[1]:
            started = time.perf_counter()
            summary = _atlas(config, ["ingest", "csv", str(path), "--index", index])
            imported[name] = {"seconds": round(time.perf_counter() - started, 1), "indexed": summary["indexed"]}
            timings["import_seconds"] += time.perf_counter() - started
            _log(f"{name}: imported {summary['indexed']} documents in {imported[name]['seconds']} s")
        machines.append(labels_only(machine))
    order = {n: k for k, n in enumerate(names)}
    machines.sort(key=lambda m: order[m.name])
    timings = {k: round(v, 1) for k, v in timings.items()} | {"imported": imported}
    return machines, timings


def _taking_turns(names: Sequence[str]) -> list[str]:
    """The development and unseen machines alternately (then the rest of the longer group)."""
    groups = [[n for n in names if n in members] for members in GROUPS.values()]
    turns = [n for pair in zip(*groups, strict=False) for n in pair]
    return turns + [n for g in groups for n in g[len(turns) // 2 :]]


def labels_only(machine: Machine) -> Machine:
    """The machine without its values (zero-width arrays of the same row counts), for scoring."""
    return Machine(
        machine.name, np.empty((len(machine.train), 0)), np.empty((len(machine.test), 0)), machine.labels,
        machine.interpretation,
    )  # fmt: skip


def assignments(texts: Sequence[str]) -> dict[str, Any]:
    """--set KEY=VALUE texts as load_settings overrides (atlas's own parsing and checks)."""
    pairs = []
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep:
            raise SmdError(f"--set {text}: expected KEY=VALUE")
        pairs.append((key.strip(), value))
    try:
        return parse_assignments(pairs)
    except AtlasError as exc:
        raise SmdError(str(exc)) from exc


def derived_config(
    config: Path, layout: str, index: str, url: str, machines: Sequence[str], overrides: Mapping[str, Any] | None = None
) -> tuple[str, str]:
    """The configuration measured: --config, then `overrides` (--set), with the source, connection and result
    settings of this data set (grouping by machine in the column layout); the job is named after the effective
    measured settings, so two configurations never share results and two that mean the same share them."""
    checked_settings(config, overrides)  # atlas refuses a top level that is not a mapping
    raw = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    raw = {name: dict(keys or {}) if isinstance(keys, dict) or keys is None else keys for name, keys in raw.items()}
    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".", 1)
        raw.setdefault(section, {})[key] = value
    kept = {k: v for k, v in raw.items() if k not in ("es", "source", "results", "alerts", "kibana")}
    if layout == "column":
        kept["grouping"] = dict(kept.get("grouping") or {}) | {"field": SERIES_FIELD[layout]}
    full = kept | _source_section(layout, index, url, machines)
    effective = effective_settings(load_settings(None, _dotted(full)))
    measured = {k: v for k, v in effective.items() if k in ("surprise", "threshold", "grouping")}
    key = json.dumps([layout, index, sorted(machines), measured], sort_keys=True, default=str)
    job = f"smd-{layout}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    full |= {"results": {"prefix": RESULT_PREFIX, "job": job}}
    return yaml.safe_dump(full, sort_keys=False), job


def checked_settings(config: Path, overrides: Mapping[str, Any] | None = None) -> Settings:
    """--config, then --set on top of it, loaded by atlas; an error names the option it comes from."""
    try:
        load_settings(config, {})
    except AtlasError as exc:
        raise SmdError(f"--config {config}: {exc}") from exc
    try:
        return load_settings(config, dict(overrides or {}))
    except AtlasError as exc:
        raise SmdError(f"--set: {exc}") from exc


def measured_step(config: Path, overrides: Mapping[str, Any] | None = None) -> timedelta:
    """surprise.step of --config (and --set), a valid atlas configuration with a step of whole minutes."""
    step = checked_settings(config, overrides).surprise.step
    if step % ROW:
        given = f"--config {config}" + (" with --set" if overrides else "")
        raise SmdError(f"{given}: surprise.step {format_duration(step)} is not whole minutes")
    return step


def _dotted(sections: Mapping[str, Any]) -> dict[str, Any]:
    """{"surprise": {"step": "5m"}} as {"surprise.step": "5m"} (load_settings's overrides)."""
    return {f"{name}.{key}": value for name, keys in sections.items() for key, value in (keys or {}).items()}


def _source_section(layout: str, index: str, url: str, machines: Sequence[str]) -> dict[str, Any]:
    metrics = list(machines) if layout == "host" else []
    source = {"index": index, "metric_field": "metric", "series_fields": [SERIES_FIELD[layout]], "metrics": metrics}
    return {"es": {"urls": [url]}, "source": source}


def atlas_detections(
    args: argparse.Namespace, index: str, machines: Sequence[Machine], step: timedelta, overrides: Mapping[str, Any]
) -> tuple[dict[str, Detection], float, list[str]]:
    """setup, backfill (unless done), anomalies: each machine's predicted window ends, the seconds of the backfills
    (when they were done) and of the listings, and the jobs. In the host layout each machine is its own job (one
    metric), so runs over different machines reuse each other's backfills; the column layout is one job."""
    parts = [[m] for m in machines] if args.layout == "host" else [list(machines)]
    found: dict[str, Detection] = {}
    seconds, jobs = 0.0, []
    for part in parts:
        text, job = derived_config(args.config, args.layout, index, args.url, [m.name for m in part], overrides)
        config = args.work / f"{job}.yml"
        config.write_text(text, encoding="utf-8")
        first = ORIGIN + step
        last = ORIGIN + math.ceil(max(m.rows for m in part) * ROW / step) * step
        marker = args.work / f"{job}.done.json"
        if args.rerun or not marker.is_file():
            _atlas(config, ["setup"])
            started = time.perf_counter()
            summary = _atlas(config, ["backfill", "--from", format_instant(first), "--to", format_instant(last)])
            done = {"seconds": time.perf_counter() - started, "summary": summary}
            marker.write_text(json.dumps(done), encoding="utf-8")
            _log(f"backfill of {job} ({', '.join(m.name for m in part)}): {done['seconds']:.0f} s")
        seconds += float(json.loads(marker.read_text(encoding="utf-8"))["seconds"])
        started = time.perf_counter()
        window = ["--from", format_instant(first), "--to", format_instant(last), "--format", "json"]
        if args.layout == "host":
            found |= events_by_machine(_atlas(config, ["anomalies", *window]), part, step)
        else:
            found |= groups_by_machine(_atlas(config, ["anomalies", "--grouped", *window]), part, step)
        seconds += time.perf_counter() - started
        jobs.append(job)
    return found, seconds, jobs


def events_by_machine(
    rows: Sequence[Mapping[str, Any]], machines: Sequence[Machine], step: timedelta
) -> dict[str, Detection]:
    """Host layout: each metric event (metric = machine) predicts its window ends; its series influencers weigh
    its columns at each of them."""
    ends: dict[str, set[datetime]] = {m.name: set() for m in machines}
    influence: dict[str, dict[datetime, dict[str, float]]] = {m.name: {} for m in machines}
    for row in rows:
        if row["metric"] not in ends:
            continue
        weights = {i["value"]: float(i["share"]) for i in row["influencers"] if i["field"] in ("series", "column")}
        for t in _span(row["start"], row["end"], step):
            ends[row["metric"]].add(t)
            here = influence[row["metric"]].setdefault(t, {})
            for column, weight in weights.items():
                here[column] = here.get(column, 0.0) + weight
    return {n: Detection(frozenset(ends[n]), influence[n]) for n in ends}


def groups_by_machine(
    rows: Sequence[Mapping[str, Any]], machines: Sequence[Machine], step: timedelta
) -> dict[str, Detection]:
    """Column layout: each grouped event of `host=<machine>` predicts its window ends; its metrics (columns) weigh
    by their scores."""
    ends: dict[str, set[datetime]] = {m.name: set() for m in machines}
    influence: dict[str, dict[datetime, dict[str, float]]] = {m.name: {} for m in machines}
    for row in rows:
        name = str(row["group"]).removeprefix(f"{SERIES_FIELD['column']}=")
        if name not in ends:
            continue
        for t in _span(row["start"], row["end"], step):
            ends[name].add(t)
            here = influence[name].setdefault(t, {})
            for member in row["metrics"]:
                here[member["metric"]] = here.get(member["metric"], 0.0) + float(member["score"])
    return {n: Detection(frozenset(ends[n]), influence[n]) for n in ends}


def _span(start: str, end: str, step: timedelta) -> list[datetime]:
    first, last = parse_instant(start), parse_instant(end)
    return [first + k * step for k in range((last - first) // step + 1)]


def _atlas(config: Path, command: Sequence[str]) -> Any:
    """Run one atlas command (this Python's atlas) and return its JSON output; a failure stops the bench."""
    argv = [sys.executable, "-m", "atlas", "--config", str(config), *command]
    _log("$ atlas --config " + " ".join([str(config), *(c if len(c) < 80 else c[:77] + "..." for c in command)]))
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SmdError(f"atlas {command[0]} failed with exit code {done.returncode} (its error is above)")
    return json.loads(done.stdout)


def _index_counts(url: str, index: str, layout: str) -> dict[str, int]:
    """Documents per machine already in the index (empty when it does not exist)."""
    field = "metric" if layout == "host" else SERIES_FIELD[layout]
    body = json.dumps({"size": 0, "aggs": {"m": {"terms": {"field": field, "size": 100}}}}).encode()
    request = urllib.request.Request(
        f"{url}/{index}/_search", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return {}
        raise SmdError(f"{url}/{index}: HTTP {exc.code}") from exc
    except urllib.error.URLError as exc:
        raise SmdError(f"cannot reach {url}: {exc.reason}") from exc
    return {b["key"]: int(b["doc_count"]) for b in answer["aggregations"]["m"]["buckets"]}


def _peer_names(asked: Sequence[str]) -> list[str]:
    if list(asked) == ["all"]:
        return list(ALL_PEERS)
    if list(asked) == ["none"]:
        return []
    for name in asked:
        if name not in ALL_PEERS:
            raise SmdError(f"--peers: {name!r} is not all, none or one of {', '.join(ALL_PEERS)}")
    return list(asked)


def _groups(machines: Sequence[Machine]) -> dict[str, list[Machine]]:
    groups = {g: [m for m in machines if m.name in members] for g, members in GROUPS.items()}
    return {g: ms for g, ms in groups.items() if ms} | {"pooled": list(machines)}


def format_report(report: Mapping[str, Any]) -> str:
    """The table: one row per detector and machine group."""
    lines = [
        f"config {report['config']}, layout {report['layout']}, index {report['index']},"
        f" step {report['step']}, {len(report['machines'])} machines"
        + (f"; missing: {', '.join(report['missing'])}" if report["missing"] else "")
    ]
    head = f"{'detector':34} {'group':12} {'prec':>6} {'recall':>6} {'f1':>6} {'pa-f1':>6} {'found':>8}"
    lines.append(head + f" {'false/md':>8} {'hit@150':>7} {'seconds':>8}")
    for r in report["rows"]:
        hit = "-" if r["hitrate150"] is None else f"{r['hitrate150']:.3f}"
        lines.append(
            f"{r['detector'][:34]:34} {r['group']:12} {r['precision']:>6.3f} {r['recall']:>6.3f} {r['f1']:>6.3f}"
            f" {r['pa_f1']:>6.3f} {str(r['found']) + '/' + str(r['incidents']):>8} {r['false_per_day']:>8.2f}"
            f" {hit:>7} {r['seconds']:>8.1f}"
        )
    return "\n".join(lines) + "\n"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

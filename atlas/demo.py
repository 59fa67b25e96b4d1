"""The end-to-end demo on the embedded Elasticsearch: simulate the blog scenario, backfill, evaluate, list events."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from atlas import es_client, evaluate, files, findings, job, listing, results, simulate
from atlas.es_client import EsClient
from atlas.indices import result_indices, setup_indices
from atlas.ingest import load
from atlas.outputs import kibana, report, watch
from atlas.records import TruthInterval
from atlas.settings import Settings, load_settings
from atlas.surprise import resolve_metrics

log = logging.getLogger(__name__)

DEMO_INDEX = "atlas-demo-metrics"
DEMO_PREFIX = "atlas-demo"
Progress = Callable[[int], None]
ProgressFactory = Callable[[int, str], Any]  # (total, label) -> a context manager yielding a Progress


@dataclass(frozen=True)
class DemoResult:
    """What the demo did and found, ready to print."""

    load: load.LoadReport
    backfill: job.RunResult
    scores: dict[str, evaluate.Scores]
    events: list[dict[str, Any]]
    truth_path: Path
    artifacts: list[Path]


def demo_settings(es_url: str, config: Path | None) -> Settings:
    """The user's settings (if any; else atlas's defaults) pointed at the embedded node and the demo's own indices."""
    overrides = {
        "es.urls": [es_url],
        "source.index": DEMO_INDEX,
        "source.series_fields": ["query"],
        "results.prefix": DEMO_PREFIX,
    }
    return load_settings(config, overrides)


def run_demo(settings: Settings, spec: simulate.SimulationSpec, out_dir: Path, bars: ProgressFactory) -> DemoResult:
    """Recreate the demo indices, index the simulated data, backfill every window with a full warm-up, evaluate."""
    client = es_client.connect(settings.es)
    _reset(client, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth_path = out_dir / "truth.csv"
    truth = simulate.truth_intervals(spec)
    simulate.write_truth_csv(truth, truth_path)
    with bars(simulate.count_documents(spec), "simulate") as advance:
        docs = simulate.simulate_documents(spec)
        loaded = load.load_documents(
            client, settings.source, DEMO_INDEX, docs, extra_keywords=["node"], progress=advance
        )
    step = settings.surprise.step
    warm_up = settings.surprise.window + settings.surprise.warm_up_buckets * settings.surprise.interval
    first, last = spec.start + warm_up, spec.start + timedelta(hours=spec.hours)
    with bars((last - first) // step + 1, "backfill") as advance:
        done = job.backfill(settings, client, first, last, progress=advance)
    scores = findings.evaluate_job(settings, client, truth, first, last)
    rows = listing.group_rows(findings.read_findings(settings, client, first, last).groups)
    return DemoResult(
        loaded, done, scores, rows, truth_path, _write_outputs(settings, client, truth, first, last, out_dir)
    )


def _write_outputs(
    settings: Settings, client: EsClient, truth: list[TruthInterval], first: datetime, last: datetime, out_dir: Path
) -> list[Path]:
    """The report (PNG too when Chromium is installed), the watch and the Kibana NDJSON, in out_dir."""
    metrics = resolve_metrics(client, settings)
    results.write_truth(client, settings, truth, metrics, settings.surprise.step)
    html = out_dir / "report.html"
    png = out_dir / "report.png" if shutil.which("chromium") else None
    if png is None:
        log.warning("no report.png: Chromium is not installed (apt-get install chromium)")
    report.write_report(findings.report_data(settings, client, first, last, truth), html, png)
    ndjson = out_dir / "kibana.ndjson"
    files.write_output(ndjson, kibana.export_saved_objects(settings, metrics, with_truth=True))
    watches = watch.write_watches(settings, out_dir / "watches", client.server.api_version)
    return [html, *([png] if png else []), *watches, ndjson]


def _reset(client: EsClient, settings: Settings) -> None:
    names = result_indices(settings.results)
    for index in (DEMO_INDEX, names.surprise, names.anomalies, names.state, names.truth):
        es_client.delete_index(client, index)
    setup_indices(client, settings)

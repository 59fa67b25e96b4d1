"""Evaluate the blog scenario for window modes max and last, time the window query, and sweep threshold settings.

Run `atlas demo` first (it indexes the simulated data into atlas-demo-metrics and writes atlas-demo/truth.csv), then
    python bench/blog_evaluation.py [--truth atlas-demo/truth.csv] [--es-url http://127.0.0.1:9250]
Results go to the prefixes atlas-bench-max and atlas-bench-last. Times are from one run on a shared machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from atlas import es_client, evaluate, results
from atlas.demo import DEMO_INDEX
from atlas.findings import evaluate_job
from atlas.indices import result_indices, setup_indices
from atlas.job import backfill
from atlas.records import TruthInterval, WindowSurprise
from atlas.settings import Settings, load_settings
from atlas.surprise import compute_window_surprise, resolve_metrics
from atlas.threshold import select_anomalies

START = datetime(2024, 1, 1, tzinfo=UTC)


def settings_for(es_url: str, mode: str) -> Settings:
    overrides = {
        "es.urls": [es_url],
        "source.index": DEMO_INDEX,
        "results.prefix": f"atlas-bench-{mode}",
        "surprise.percentiles": [90.0, 99.0],
        "surprise.mode": mode,
    }
    return load_settings(None, overrides)


def disruptions_found(truth: list[TruthInterval], found: list[object], metrics: list[str], step: timedelta) -> str:
    """Per blog disruption (grouped by start hour): how many of its metrics have a detection inside it."""
    hits: dict[int, list[int]] = {}
    for t in truth:
        ms = [t.metric] if t.metric else metrics
        hour = (t.start - START) // step
        got = sum(any(a.metric == m and t.start < a.window_end <= t.end for a in found) for m in ms)  # type: ignore[attr-defined]
        total = hits.setdefault(hour, [0, 0])
        total[0], total[1] = total[0] + got, total[1] + len(ms)
    return " ".join(f"h{hour}:{got}/{n}" for hour, (got, n) in sorted(hits.items()))


def sweep(stored: list[WindowSurprise], settings: Settings, truth: list[TruthInterval]) -> None:
    step = settings.surprise.step
    first, last = min(r.window_end for r in stored), max(r.window_end for r in stored)
    metrics = sorted({r.metric for r in stored})
    steps = {m: [r.window_end for r in stored if r.metric == m] for m in metrics}
    series = {(m, p): results.percentile_series(stored, m, p, first, last, step) for m in metrics for p in (90.0, 99.0)}
    print("percentiles window sigmas  events found/missed/false  disruptions (detected metrics / metrics)")
    for pcts, window, sigmas in itertools.product([(90.0,), (99.0,), (90.0, 99.0)], [6, 12, 24], [3.0, 4.0, 5.0, 6.0]):
        th = dataclasses.replace(
            settings.threshold, window=window, sigmas=sigmas, levels=(sigmas, sigmas + 1, sigmas + 2)
        )
        found = [a for m in metrics for p in pcts for a in select_anomalies(m, p, series[(m, p)], th, step)]
        line = evaluate.evaluation_json(evaluate.evaluate(truth, found, steps, step))["all"]
        counts = f"{line['events_found']}/{line['events_missed']}/{line['false_events']}"
        label = "+".join(f"{p:g}" for p in pcts)
        print(f"{label:11} {window:6} {sigmas:6}  {counts:>25}  {disruptions_found(truth, found, metrics, step)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--truth", type=Path, default=Path("atlas-demo/truth.csv"))
    parser.add_argument("--es-url", default="http://127.0.0.1:9250")
    parser.add_argument("--hours", type=int, default=600)
    args = parser.parse_args()
    truth = evaluate.read_truth(args.truth)
    for mode in ("max", "last"):
        settings = settings_for(args.es_url, mode)
        client = es_client.connect(settings.es)
        names = result_indices(settings.results)
        for index in (names.surprise, names.anomalies, names.state):
            es_client.delete_index(client, index)
        setup_indices(client, settings)
        warm_up = settings.surprise.window + settings.surprise.baseline_window * settings.surprise.interval
        first, last = START + warm_up, START + timedelta(hours=args.hours)
        metrics = resolve_metrics(client, settings)
        single = []
        for k in range(10):  # one window query at a time, for the latency of one request
            started = time.perf_counter()
            compute_window_surprise(client, settings, metrics, first + timedelta(hours=50 * k))
            single.append(time.perf_counter() - started)
        started = time.perf_counter()
        done = backfill(settings, client, first, last)
        seconds = time.perf_counter() - started
        print(f"\n== mode {mode}: {len(done.windows)} windows backfilled in {seconds:.1f} s")
        print(f"one window query (5 metrics): median {sorted(single)[5] * 1000:.0f} ms over 10")
        print(evaluate.format_evaluation(evaluate_job(settings, client, truth, first, last)), end="")
        stored = results.read_surprise(client, settings, first, last)
        found = results.read_anomalies(client, settings, first, last)
        print(
            "disruptions:", disruptions_found(truth, found, sorted({r.metric for r in stored}), settings.surprise.step)
        )
        sweep(stored, settings, truth)


if __name__ == "__main__":
    main()

"""Sweep threshold settings over a job's stored percentile series and print the evaluation of each (no re-query).

python bench/threshold_sweep.py --truth atlas-demo/truth.csv [--prefix atlas-demo]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from datetime import UTC, datetime

from atlas import es_client, evaluate, results
from atlas.settings import load_settings
from atlas.threshold import select_anomalies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--truth", required=True)
    parser.add_argument("--prefix", default="atlas-demo")
    parser.add_argument("--es-url", default="http://127.0.0.1:9250")
    args = parser.parse_args()
    overrides = {"es.urls": [args.es_url], "results.prefix": args.prefix, "surprise.percentiles": [90.0, 99.0]}
    settings = load_settings(None, overrides)
    client = es_client.connect(settings.es)
    stored = results.read_surprise(client, settings, datetime(1970, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    truth = evaluate.read_truth(__import__("pathlib").Path(args.truth))
    step = settings.surprise.step
    first, last = min(r.window_end for r in stored), max(r.window_end for r in stored)
    metrics = sorted({r.metric for r in stored})
    steps = {m: [r.window_end for r in stored if r.metric == m] for m in metrics}
    print(
        f"{'percentiles':12}{'window':>7}{'sigmas':>7}{'found':>7}{'missed':>7}{'false':>7}{'precision':>10}{'recall':>8}"
    )
    for pcts, window, sigmas in itertools.product([(90.0,), (99.0,), (90.0, 99.0)], [6, 12, 24, 48], [3, 4, 5, 6]):
        th = dataclasses.replace(
            settings.threshold, window=window, sigmas=float(sigmas), levels=(sigmas, sigmas + 1, sigmas + 2)
        )
        found = [
            a
            for m in metrics
            for p in pcts
            for a in select_anomalies(m, p, results.percentile_series(stored, m, p, first, last, step), th, step)
        ]
        line = evaluate.evaluation_json(evaluate.evaluate(truth, found, steps, step))["all"]
        print(
            f"{'+'.join(f'{p:g}' for p in pcts):12}{window:>7}{sigmas:>7}{line['events_found']:>7}{line['events_missed']:>7}"
            f"{line['false_events']:>7}{line['precision']:>10.3f}{line['recall']:>8.3f}"
        )


if __name__ == "__main__":
    main()

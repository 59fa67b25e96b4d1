"""Detection quality per scenario and seed: atlas's defaults, the blog's original rule and a windowed-Gaussian peer.

    python bench/detection.py [--seeds 1 2 3 4 5] [--scenarios blog seasonal level-shift scales]
                              [--queries 100 --nodes 10 --hours 600] [--check]

Each data set is `atlas simulate`'s (same seeds, same numbers), averaged per series and hour with numpy; the percentile
series P(m, T, p) is computed here with numpy by the rules of docs/how-it-works.md, and everything after it is atlas's
own code: threshold.select_anomalies flags the points and evaluate.evaluate scores them by PRODUCT.md's rules. `--check`
first compares this numpy surprise with reference.py (the test oracle) on a small data set and stops on a difference
above 1e-9, so the table measures the rules atlas runs in Elasticsearch (the parity tests tie those to reference.py).
The peer is the textbook client-side detector: per series, |x - mean| / std over the previous 24 hours (pandas
rolling), a series flagged above 3; a metric flagged in an hour when more than 10% of its series are.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

from atlas import evaluate, simulate
from atlas.records import Anomaly, TruthInterval
from atlas.reference import reference_window
from atlas.settings import Settings, SurpriseSettings, load_settings
from atlas.surprise import exact_percentile
from atlas.threshold import select_anomalies

FloatArray = npt.NDArray[np.float64]
HOUR = timedelta(hours=1)
BLOG_RULE = {
    "surprise.mode": "max",
    "surprise.baseline": "mean",
    "surprise.normalization": "none",
    "surprise.percentiles": [90.0],
    "surprise.min_tail_series": 0,
    "threshold.window": 6,
    "threshold.lookback": 6,
    "threshold.sigmas": 3.0,
    "threshold.levels": [3.0, 4.0, 5.0],
}
PEER_WINDOW, PEER_SIGMAS, PEER_SHARE = 24, 3.0, 0.10


def window_surprise(x: FloatArray, s: SurpriseSettings) -> FloatArray:
    """S(q, T) for window ends T = hour + 1 (index = bucket hour), shape (series, hours); NaN where undefined.

    Each bucket's baseline is taken over the previous `baseline_window` present buckets of its series."""
    scores = np.full(x.shape, np.nan)
    for q in range(x.shape[0]):
        hours = np.flatnonzero(~np.isnan(x[q]))
        values = x[q, hours]
        for i in range(1, len(values)):
            previous = values[max(0, i - s.baseline_window) : i]
            base = float(np.median(previous)) if s.baseline == "median" else float(np.mean(previous))
            surprise = abs(values[i] - base)
            if s.normalization == "relative":
                surprise = surprise / abs(base) if base != 0 else np.nan
            elif s.normalization == "zscore":
                std = float(np.std(previous))
                surprise = surprise / std if std > 0 else np.nan
            scores[q, hours[i]] = surprise
    if s.mode == "last":
        return scores
    buckets = s.window // s.interval
    padded = np.concatenate([np.full((x.shape[0], buckets - 1), np.nan), scores], axis=1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, buckets, axis=1)
    with np.errstate(all="ignore"):
        return np.where(np.isnan(windows).all(axis=2), np.nan, np.nanmax(np.nan_to_num(windows, nan=-1.0), axis=2))


def percentile_series(x: FloatArray, s: SurpriseSettings) -> dict[float, FloatArray]:
    """P(T, p) per hour index (window end = start + index + 1 h): the exact percentile over the scored series."""
    scores = window_surprise(x, s)
    found: dict[float, FloatArray] = {p: np.full(x.shape[1], np.nan) for p in s.percentiles}
    for t in range(x.shape[1]):
        column = np.sort(scores[~np.isnan(scores[:, t]), t])
        for p in s.percentiles:
            if len(column) and s.reports_percentile(p, len(column)):
                found[p][t] = exact_percentile(column, p)
    return found


def atlas_anomalies(means: FloatArray, settings: Settings, ends: pd.DatetimeIndex, first: int) -> list[Anomaly]:
    """The anomalies atlas's threshold stage selects on the numpy percentile series of every metric."""
    found: list[Anomaly] = []
    for m in range(means.shape[0]):
        for p, values in percentile_series(means[m], settings.surprise).items():
            series = pd.Series(values[first:], index=ends)
            found += select_anomalies(simulate.metric_name(m), p, series, settings.threshold, HOUR)
    return found


def peer_anomalies(means: FloatArray, ends: pd.DatetimeIndex, first: int) -> list[Anomaly]:
    """The windowed-Gaussian peer: a metric is flagged in an hour when over PEER_SHARE of its series are."""
    found: list[Anomaly] = []
    for m in range(means.shape[0]):
        frame = pd.DataFrame(means[m].T)
        rolling = frame.rolling(PEER_WINDOW, min_periods=PEER_WINDOW)
        z = ((frame - rolling.mean().shift(1)) / rolling.std(ddof=0).shift(1)).abs()
        share = (z > PEER_SIGMAS).sum(axis=1) / frame.notna().sum(axis=1)
        for end, value in zip(ends, share.to_numpy()[first:], strict=True):
            if value > PEER_SHARE:
                t = end.to_pydatetime()
                found.append(
                    Anomaly(simulate.metric_name(m), 0.0, t, value, 0.0, 0.0, PEER_SHARE, None, "high", "", ())
                )
    return found


def delays(truth: Sequence[TruthInterval], found: Sequence[Anomaly], metrics: Sequence[str]) -> list[float]:
    """Hours from each found (interval, metric)'s first possible window end to its first detection."""
    hours = []
    for interval in truth:
        for metric in [interval.metric] if interval.metric else metrics:
            hits = [a.window_end for a in found if a.metric == metric and interval.start < a.window_end <= interval.end]
            if hits:
                hours.append((min(hits) - interval.start - HOUR) / HOUR)
    return hours


def score_line(
    truth: list[TruthInterval], found: list[Anomaly], metrics: list[str], ends: pd.DatetimeIndex
) -> dict[str, object]:
    steps = {m: [t.to_pydatetime() for t in ends] for m in metrics}
    line: dict[str, object] = evaluate.evaluation_json(evaluate.evaluate(truth, found, steps, HOUR))["all"]
    waited = delays(truth, found, metrics)
    return line | {"max_delay_h": max(waited) if waited else None}


def check_against_reference() -> float:
    """The largest relative difference between this numpy surprise and reference.py, on a small scales data set."""
    spec = simulate.SimulationSpec(metrics=2, queries=12, nodes=2, hours=90, seed=7, scenario="scales")
    docs = pd.DataFrame(
        [
            (pd.Timestamp(str(d["@timestamp"])), d["metric"], d["query"], d["value"])
            for d in simulate.simulate_documents(spec)
        ],
        columns=["timestamp", "metric", "series", "value"],
    )
    means = simulate.hourly_means(spec)
    worst = 0.0
    for overrides in ({}, BLOG_RULE):
        s = load_settings(None, dict(overrides)).surprise
        mine = {m: percentile_series(means[m], s) for m in range(spec.metrics)}
        for hour in range(48, spec.hours):
            end = spec.start + timedelta(hours=hour + 1)
            for metric, ref in reference_window(docs, s, end).items():
                for p, want in ref.result.percentiles.items():
                    got = mine[int(metric.split("_")[1])][p][hour]
                    if want is None or np.isnan(got):
                        if (want is None) != bool(np.isnan(got)):
                            raise SystemExit(f"check: {metric} p{p:g} at {end}: reference {want}, numpy {got}")
                        continue
                    worst = max(worst, abs(got - want) / max(abs(want), 1e-300))
    if worst > 1e-9:
        raise SystemExit(f"check: numpy surprise differs from reference.py by {worst:.3g} (relative)")
    return worst


def run(spec: simulate.SimulationSpec, detectors: dict[str, Callable[..., list[Anomaly]]]) -> list[dict[str, object]]:
    started = time.perf_counter()
    means = simulate.hourly_means(spec)
    truth = simulate.truth_intervals(spec)
    first = 48  # a full warm-up: 24 h window + 24 buckets of baseline
    ends = pd.date_range(spec.start + timedelta(hours=first + 1), periods=spec.hours - first, freq="h", tz="UTC")
    metrics = [simulate.metric_name(m) for m in range(spec.metrics)]
    rows = []
    for name, detect in detectors.items():
        line = score_line(truth, detect(means, ends, first), metrics, ends)
        rows.append({"scenario": spec.scenario, "seed": spec.seed, "detector": name, **line})
    rows[-1]["seconds"] = round(time.perf_counter() - started, 1)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--scenarios", nargs="+", default=["blog", "seasonal", "level-shift", "scales"])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--hours", type=int, default=600)
    parser.add_argument("--check", action="store_true", help="compare with reference.py first")
    args = parser.parse_args()
    if args.check:
        print(f"check: numpy surprise equals reference.py to {check_against_reference():.1e} (relative)")
    defaults, blog = load_settings(None, {}), load_settings(None, dict(BLOG_RULE))
    detectors: dict[str, Callable[..., list[Anomaly]]] = {
        "atlas defaults": lambda x, e, f: atlas_anomalies(x, defaults, e, f),
        "blog rule": lambda x, e, f: atlas_anomalies(x, blog, e, f),
        "windowed gaussian": peer_anomalies,
    }
    print(f"{args.queries} queries x {args.nodes} nodes x {args.hours} h, 5 metrics")
    header = f"{'scenario':12} {'seed':>4} {'detector':18} {'found':>5} {'missed':>6} {'false':>5}"
    print(header + f" {'f1':>6} {'pa-f1':>6} {'delay h':>7}")
    for scenario in args.scenarios:
        for seed in args.seeds:
            spec = simulate.SimulationSpec(
                queries=args.queries, nodes=args.nodes, hours=args.hours, seed=seed, scenario=scenario
            )
            for row in run(spec, detectors):
                delay = "-" if row["max_delay_h"] is None else f"{row['max_delay_h']:g}"
                print(
                    f"{row['scenario']:12} {row['seed']:>4} {row['detector']:18} {row['events_found']:>5}"
                    f" {row['events_missed']:>6} {row['false_events']:>5} {row['f1']:>6.3f}"
                    f" {row['point_adjusted']['f1']:>6.3f} {delay:>7}",  # type: ignore[index]
                    flush=True,
                )


if __name__ == "__main__":
    main()

"""The peers atlas is measured against on SMD (bench/server_metrics.py), each flagging rows with a threshold fixed in
advance or taken from the train half, never chosen on the labels:

- windowed Gaussian per metric: z = |x - mean| / std over the trailing 1 h or 24 h (current row excluded; a std of
  0 gives no z), on the 1-minute rows or on 5-minute bucket means; a row is flagged when the max or the 90th
  percentile of z over the 38 metrics is above k, for k 3 and 6 (16 variants); its columns weigh by their z;
- scikit-learn's IsolationForest, fitted on each machine's train half of 5-minute bucket means (100 trees, seed 0); a
  bucket is flagged when its score is above the train scores' max, or above their 99.9th percentile.

A flagged row predicts the window end of the step that holds it (the same grid and scorer as atlas's).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from smd import COLUMNS, ORIGIN, Detection, FloatArray, Machine, read_machine, step_of_row

PEERS = ("gaussian", "iforest")
BUCKET = 5  # minutes of a bucket mean
RESOLUTIONS = {"1m": 1, "5m": BUCKET}
WINDOWS = {"1h": 60, "24h": 1440}  # minutes
AGGREGATES = ("max", "p90")
SIGMAS = (3.0, 6.0)
IFOREST_RULES = ("max", "p99.9")


def bucket_means(values: FloatArray, minutes: int) -> FloatArray:
    """Means of consecutive `minutes` rows (the last bucket may be partial): bucket b holds rows b*minutes on."""
    if minutes == 1:
        return values
    return pd.DataFrame(values).groupby(np.arange(len(values)) // minutes).mean().to_numpy()


def trailing_z(values: FloatArray, window: int) -> FloatArray:
    """|x - mean| / std (population) of the previous `window` rows of each column; NaN without a full window or
    where that std is 0."""
    frame = pd.DataFrame(values)
    rolling = frame.rolling(window, min_periods=window)
    mean, std = rolling.mean().shift(1).to_numpy(), rolling.std(ddof=0).shift(1).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        z: FloatArray = np.abs(values - mean) / std
    z[~(std > 1e-12)] = np.nan  # a flat history gives no z (rolling sums leave ~1e-17 for a constant column)
    return z


def aggregate(z: FloatArray, how: str) -> FloatArray:
    """Per row, the max or the 90th percentile (numpy's linear rule, as np.nanpercentile, 30 times faster) of z
    over the columns that have one; NaN when none has."""
    present = (~np.isnan(z)).sum(axis=1)
    ordered = np.sort(z, axis=1)  # NaN last
    rows = np.arange(len(z))
    position = np.maximum(present - 1, 0) * (1.0 if how == "max" else 0.9)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, np.maximum(present - 1, 0))
    value = ordered[rows, low] + (ordered[rows, high] - ordered[rows, low]) * (position - low)
    value[present == 0] = np.nan
    return value


def flagged_detection(
    flags: npt.NDArray[np.bool_], first_rows: npt.NDArray[np.int64], step: timedelta, z: FloatArray | None
) -> Detection:
    """The window ends of the flagged rows (row r starts at minute first_rows[r]); columns weigh by z if given."""
    rows = np.flatnonzero(flags)
    ks = step_of_row(first_rows[rows], step)
    unique, slot = np.unique(ks, return_inverse=True)
    ends = [ORIGIN + int(k) * step for k in unique]
    influence: dict[datetime, dict[str, float]] = {}
    if z is not None and len(rows):
        weights = np.zeros((len(unique), z.shape[1]))
        np.add.at(weights, slot, np.where(z[rows] > 0, z[rows], 0.0))  # NaN > 0 is False
        for end, row in zip(ends, weights, strict=True):
            influence[end] = {COLUMNS[c]: float(row[c]) for c in np.flatnonzero(row)}
    return Detection(frozenset(ends), influence)


def gaussian_variants(machine: Machine, step: timedelta, scored_from: int) -> dict[str, tuple[Detection, float]]:
    """The 16 windowed-Gaussian variants of one machine, each with the seconds it took. Only rows from minute
    `scored_from` on name influencers (the scorer reads the test rows only)."""
    values = np.concatenate([machine.train, machine.test])
    found: dict[str, tuple[Detection, float]] = {}
    for resolution, minutes in RESOLUTIONS.items():
        started = time.perf_counter()
        series = bucket_means(values, minutes)
        first_rows = np.arange(len(series), dtype=np.int64) * minutes
        base = time.perf_counter() - started
        for window, length in WINDOWS.items():
            started = time.perf_counter()
            z = trailing_z(series, length // minutes)
            scored = first_rows >= scored_from - minutes
            z_seconds = time.perf_counter() - started + base
            for how in AGGREGATES:
                started = time.perf_counter()
                level = aggregate(z, how)
                agg_seconds = time.perf_counter() - started
                for k in SIGMAS:
                    started = time.perf_counter()
                    flags = (level > k) & scored
                    detection = flagged_detection(flags, first_rows, step, z)
                    name = f"gaussian {resolution} {window} {how} k{k:g}"
                    found[name] = (detection, z_seconds + agg_seconds + time.perf_counter() - started)
    return found


def iforest_variants(machine: Machine, step: timedelta) -> dict[str, tuple[Detection, float]]:
    """IsolationForest on 5-minute bucket means, fitted on the buckets wholly in the train half."""
    from sklearn.ensemble import IsolationForest  # a bench-only extra (pip install -e '.[bench]')

    started = time.perf_counter()
    series = bucket_means(np.concatenate([machine.train, machine.test]), BUCKET)
    first_rows = np.arange(len(series), dtype=np.int64) * BUCKET
    train = series[: len(machine.train) // BUCKET]
    forest = IsolationForest(n_estimators=100, random_state=0).fit(train)
    train_scores, scores = -forest.score_samples(train), -forest.score_samples(series)
    seconds = time.perf_counter() - started
    scored = first_rows >= len(machine.train) - BUCKET
    cuts = {"max": float(train_scores.max()), "p99.9": float(np.percentile(train_scores, 99.9))}
    return {
        f"iforest 5m train {rule}": (flagged_detection((scores > cuts[rule]) & scored, first_rows, step, None), seconds)
        for rule in IFOREST_RULES
    }


def run_peers(
    data: Path, names: Sequence[str], step: timedelta, families: Sequence[str]
) -> dict[str, tuple[dict[str, Detection], float]]:
    """Every variant of the asked families on every machine: {variant: ({machine: Detection}, seconds summed)}."""
    found: dict[str, tuple[dict[str, Detection], float]] = {}
    for name in names:
        started = time.perf_counter()
        machine = read_machine(data, name)
        variants: dict[str, tuple[Detection, float]] = {}
        if "gaussian" in families:
            variants |= gaussian_variants(machine, step, len(machine.train))
        if "iforest" in families:
            variants |= iforest_variants(machine, step)
        for variant, (detection, seconds) in variants.items():
            detections, total = found.get(variant, ({}, 0.0))
            detections[name] = detection
            found[variant] = (detections, total + seconds)
        print(f"peers: {name} in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return found

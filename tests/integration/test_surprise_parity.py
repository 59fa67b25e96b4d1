"""Elasticsearch's surprise numbers equal the pure-Python reference's, to 1e-9, on seeded data sets."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from elasticsearch import Elasticsearch

from atlas import es_client
from atlas.ingest import load
from atlas.settings import Settings, load_settings
from tests.parity import assert_windows_match_reference

pytestmark = pytest.mark.integration

START = datetime(2024, 3, 1, tzinfo=UTC)
HOURS = 84
WINDOW_ENDS = [START + timedelta(hours=h) for h in (30, 49, 60, 71, 84)]


def _frame(rows: list[tuple[int, int, str, float]], metric: str) -> pd.DataFrame:
    """(hour, minute, series, value) rows of one metric as reference input."""
    return pd.DataFrame(
        {
            "timestamp": [START + timedelta(hours=h, minutes=m) for h, m, _, _ in rows],
            "metric": metric,
            "series": [s for _, _, s, _ in rows],
            "value": [float(v) for _, _, _, v in rows],
        }
    )


def _noisy(
    metric: str, seed: int, series: int = 15, level: float = 10.0, noise: float = 0.5
) -> list[tuple[int, int, str, float]]:
    rng = np.random.default_rng(seed)
    return [
        (h, m, f"q{s:02d}", level + s + rng.normal(0, noise))
        for h in range(HOURS)
        for s in range(series)
        for m in (10, 40)  # two documents per hour: bucket averages matter
    ]


def datasets() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    flat = _noisy("flat", 1, noise=0.01)
    spike = [(h, m, s, v * 10 if (s, h) == ("q03", 80) else v) for h, m, s, v in _noisy("spike", 2)]
    dip = [(h, m, s, 0.0 if (s, h) == ("q05", 70) else v) for h, m, s, v in _noisy("dip", 3)]
    gaps = [row for row in _noisy("gaps", 4) if rng.random() > 0.25 and not (row[0] in (59, 60, 83) and row[2] < "q05")]
    late = [row for row in _noisy("late", 5) if row[2] != "q07" or row[0] >= 76]
    single = _noisy("single", 6, series=1)
    six = _noisy("six", 9, series=6)  # p90 of 6 values sits at index 4.5: Java rounds half up, to 5
    lognormal = [(h, m, s, float(np.exp(rng.normal(3, 1)))) for h, m, s, _ in _noisy("lognormal", 7)]
    equal = [(h, m, s, 5.0) for h, m, s, _ in _noisy("equal", 8)]
    named = {"flat": flat, "spike": spike, "dip": dip, "gaps": gaps, "late": late, "single": single, "six": six}
    named |= {"lognormal": lognormal, "equal": equal}
    return pd.concat([_frame(rows, name) for name, rows in named.items()], ignore_index=True)


def index_datasets(url: str, index: str) -> pd.DataFrame:
    """Index datasets() into `index` of the cluster at url; returns the frame the reference reads."""
    frame = datasets()
    settings = load_settings(None, {"es.urls": [url], "source.index": index})
    docs = (
        {"@timestamp": ts.isoformat(), "metric": metric, "query": series, "node": "n0", "value": value}
        for ts, metric, series, value in frame.itertuples(index=False)
    )
    load.load_documents(es_client.connect(settings.es), settings.source, index, docs, extra_keywords=["node"])
    return frame


@pytest.fixture(scope="module")
def indexed(es: Elasticsearch, es_url: str) -> Iterator[tuple[str, pd.DataFrame]]:
    index = f"atlas-test-{uuid.uuid4().hex[:12]}-parity"
    yield index, index_datasets(es_url, index)
    es.indices.delete(index=index)


@dataclass(frozen=True)
class Case:
    mode: str
    normalization: str
    baseline: str
    percentiles: list[float]
    min_tail: int
    scale_window: int | None = None

    @property
    def id(self) -> str:
        return "-".join(str(v) for v in dataclasses.astuple(self) if v is not None)


CASES = [
    *(
        Case(*c)
        for c in itertools.product(
            ["max", "last"], ["none", "zscore", "relative"], ["mean", "median"], [[90.0, 99.0]], [5]
        )
    ),
    Case("last", "relative", "median", [90.0], 5),
    Case("last", "gaussian", "mean", [90.0, 99.0], 5),
    Case("max", "gaussian", "median", [90.0, 99.0], 5),
    Case("max", "none", "mean", [90.0, 99.0], 0),
    # The std over its own window (surprise.scale_window), longer and shorter than the baseline's 24 buckets; the
    # warm-up before the first window end (hour 30) reaches back before the data, where series start late or have gaps.
    Case("max", "zscore", "median", [90.0, 99.0], 5, 60),
    Case("last", "zscore", "mean", [90.0, 99.0], 5, 40),
    Case("max", "gaussian", "median", [90.0, 99.0], 5, 7),
    Case("last", "gaussian", "median", [90.0, 99.0], 5, 36),
]


def assert_case_matches_reference(url: str, index: str, frame: pd.DataFrame, case: Case) -> None:
    """The surprise of every metric at every window end of WINDOW_ENDS, computed by the cluster at url from `index`
    (holding `frame`), equals reference.py's to 1e-9."""
    settings: Settings = load_settings(
        None,
        {
            "es.urls": [url],
            "source.index": index,
            "surprise.mode": case.mode,
            "surprise.normalization": case.normalization,
            "surprise.baseline": case.baseline,
            "surprise.percentiles": case.percentiles,
            "surprise.min_tail_series": case.min_tail,
            "surprise.top_series": 1000,  # every series, so that each one's window surprise is compared
            "surprise.scale_window": case.scale_window,
        },
    )
    metrics = sorted(frame["metric"].unique())
    compared = assert_windows_match_reference(es_client.connect(settings.es), settings, frame, WINDOW_ENDS)
    # zscore and gaussian leave out "equal" (std 0 everywhere); every other metric is scored in every window
    assert compared == len(WINDOW_ENDS) * (len(metrics) - (case.normalization in ("zscore", "gaussian")))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_elasticsearch_equals_reference(indexed: tuple[str, pd.DataFrame], es_url: str, case: Case) -> None:
    index, frame = indexed
    assert_case_matches_reference(es_url, index, frame, case)

"""The one-scan backfill equals the per-window requests, window by window, to 1e-9 on the real node: gaps, short
histories, ended series, flat series, several partitions and blocks, both modes and normalizations."""

from __future__ import annotations

import dataclasses
import itertools
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from elasticsearch import Elasticsearch

from atlas import es_client, job, results
from atlas.errors import EsQueryRejected
from atlas.indices import setup_indices
from atlas.ingest import load
from atlas.queries import build_surprise_request
from atlas.records import WindowSurprise
from atlas.reference import reference_window
from atlas.settings import Settings, load_settings
from atlas.surprise import (
    Budget,
    RequestPlan,
    compute_window_surprise,
    plan_requests,
    scan_surprise,
    window_buckets_per_series,
)
from atlas.surprise import scan as one_scan
from atlas.surprise.plan import split_keys
from atlas.surprise.series import series_window_values
from tests.parity import with_top_series

pytestmark = pytest.mark.integration

START = datetime(2024, 3, 1, tzinfo=UTC)
HOURS = 90
SERIES = 9
# From windows whose warm-up starts before the data to the last complete hour (window 12 h, baseline 6 buckets).
ENDS = [START + timedelta(hours=h) for h in range(4, HOURS + 1)]
# So small that every metric takes several partitions and several blocks of windows.
SMALL_BUDGET = Budget(buckets=140, values=9 * 30)


def _rows() -> list[tuple[str, str, int, int, float]]:
    """(metric, series, hour, minute, value) of every document; two per hour so that bucket means matter."""
    rng = np.random.default_rng(11)
    rows: list[tuple[str, str, int, int, float]] = []
    for metric, s, h in itertools.product(("steady", "gaps", "sparse", "late", "flat"), range(SERIES), range(HOURS)):
        series = f"q{s}"
        if metric == "gaps" and (rng.random() < 0.2 or (40 <= h < 44 and s < 4)):
            continue
        if metric == "sparse" and (h + s) % 3:
            continue
        if metric == "late" and (h < 10 * s or (s == 8 and h > 60)):  # starts late, one also stops early
            continue
        for minute in (5, 35):
            value = 5.0 if metric == "flat" and s < 5 else 10.0 + s + rng.normal(0, 1.0 + s % 3)
            if metric == "steady" and (s, h) == (3, 70):
                value *= 4
            rows.append((metric, series, h, minute, float(value)))
    return rows


@pytest.fixture(scope="module")
def source_index(es: Elasticsearch, es_url: str) -> Iterator[str]:
    index = f"atlas-test-{uuid.uuid4().hex[:12]}-scan"
    settings = load_settings(None, {"es.urls": [es_url], "source.index": index})
    docs = (
        {
            "@timestamp": (START + timedelta(hours=h, minutes=m)).isoformat(),
            "metric": metric,
            "query": series,
            "node": f"n{(h + m) % 2}",
            "value": value,
        }
        for metric, series, h, m, value in _rows()
    )
    load.load_documents(es_client.connect(settings.es), settings.source, index, docs, extra_keywords=["node"])
    yield index
    es.indices.delete(index=index)


@dataclass(frozen=True)
class Case:
    mode: str
    normalization: str
    series_fields: tuple[str, ...] = ("query",)
    scale_window: int | None = None

    @property
    def name(self) -> str:
        scale = "" if self.scale_window is None else f"-scale{self.scale_window}"
        return f"{self.mode}-{self.normalization}-{'+'.join(self.series_fields)}{scale}"


CASES = [Case(m, n) for m, n in itertools.product(("max", "last"), ("none", "zscore"))]
CASES.append(Case("max", "zscore", ("query", "node")))
# The std over its own window (longer or shorter than the baseline's 6 buckets): the warm-up and the gaps' reach
# follow the longer of the two.
CASES += [Case("max", "zscore", scale_window=15), Case("last", "gaussian", scale_window=15)]
CASES.append(Case("max", "gaussian", scale_window=3))


def settings_for(es_url: str, index: str, case: Case, prefix: str = "atlas") -> Settings:
    overrides = {
        "es.urls": [es_url],
        "source.index": index,
        "source.series_fields": list(case.series_fields),
        "surprise.window": "12h",
        "surprise.baseline_window": 6,
        "surprise.mode": case.mode,
        "surprise.normalization": case.normalization,
        "surprise.scale_window": case.scale_window,
        "surprise.percentiles": [50, 90, 99],
        "surprise.top_series": 4,
        "results.prefix": prefix,
    }
    return load_settings(None, overrides)


@dataclass
class Requests:
    """Partition sizes (and buckets per series) of the scan and of the per-window requests, and the series asked
    again by the per-window request (affected by gaps)."""

    sizes: list[tuple[int, int]] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)
    enable: Callable[[], None] = lambda: None  # records the requests (after the per-window answers are in)


@pytest.fixture
def small_requests(monkeypatch: pytest.MonkeyPatch) -> Requests:
    """The one-scan's partitions and the series it asks the per-window request for, recorded."""
    seen = Requests()

    def recording_split(keys: Sequence[str], buckets_per_series: int, budget: Budget) -> list[Sequence[str]]:
        parts = split_keys(keys, buckets_per_series, budget)
        seen.sizes.extend((len(p), buckets_per_series) for p in parts)
        return parts

    def recording_ask(
        client: es_client.EsClient,
        settings: Settings,
        metric: str,
        end: datetime,
        keys: Sequence[str],
        budget: Budget,
    ) -> dict[str, float]:
        seen.asked.extend(f"{metric}/{k}" for k in keys)
        return series_window_values(client, settings, metric, end, keys, budget)

    def enable() -> None:
        monkeypatch.setattr(one_scan, "split_keys", recording_split)
        monkeypatch.setattr(one_scan, "series_window_values", recording_ask)

    seen.enable = enable
    return seen


def assert_same(got: list[WindowSurprise], want: list[WindowSurprise]) -> None:
    assert [(r.window_end, r.metric) for r in got] == [(r.window_end, r.metric) for r in want]
    for g, w in zip(got, want, strict=True):
        where = (g.metric, g.window_end.isoformat())
        assert (g.window_start, g.series_count) == (w.window_start, w.series_count), where
        assert [s.series for s in g.top_series] == [s.series for s in w.top_series], where
        assert [s.surprise for s in g.top_series] == pytest.approx([s.surprise for s in w.top_series], rel=1e-9), where
        assert list(g.percentiles) == list(w.percentiles), where
        for p, value in w.percentiles.items():
            expected = value if value is None else pytest.approx(value, rel=1e-9, abs=1e-12)
            assert g.percentiles[p] == expected, (*where, p, g.percentiles, w.percentiles)


def flat(node: object, path: str = "") -> dict[str, object]:
    """A document as path -> leaf value, so that numbers in nested lists can be compared to a tolerance."""
    if isinstance(node, dict):
        return {k: v for key, child in node.items() for k, v in flat(child, f"{path}.{key}").items()}
    if isinstance(node, list):
        return {k: v for i, child in enumerate(node) for k, v in flat(child, f"{path}[{i}]").items()}
    return {path: node}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_one_scan_equals_the_per_window_requests(
    source_index: str, es_url: str, case: Case, small_requests: Requests
) -> None:
    settings = settings_for(es_url, source_index, case)
    client = es_client.connect(settings.es)
    metrics = ["steady", "gaps", "sparse", "late", "flat"]
    per_window = (r for end in ENDS for r in compute_window_surprise(client, settings, metrics, end))
    want = [with_top_series(client, settings, r) for r in per_window]
    small_requests.enable()
    got = scan_surprise(client, settings, metrics, ENDS, SMALL_BUDGET)
    assert_same(got, want)
    # The scan's partitions (more buckets per series than one window's request: a block of window ends).
    sizes = [n for n, buckets in small_requests.sizes if buckets > window_buckets_per_series(settings)]
    asked = set(small_requests.asked)
    assert max(sizes) < SERIES * len(case.series_fields) and len(sizes) > 2 * len(metrics)  # several partitions each
    # Gaps within a baseline's reach were asked again; series without gaps never were.
    assert any(a.startswith("sparse/") for a in asked) and any(a.startswith("gaps/") for a in asked)
    if case.series_fields == ("query",):  # with the node too, every series has a document every other hour only
        assert not any(a.startswith(("steady/", "flat/")) for a in asked)
    assert {r.metric for r in want} == set(metrics)
    assert any(r.series_count < SERIES for r in want if r.metric == "gaps")  # gaps reached the results


def test_metrics_that_fit_one_request_each_but_not_together_go_in_several(source_index: str, es_url: str) -> None:
    """Each metric's 9 series x 18 buckets fits the budget, two together do not: one request per metric, with the
    same results as one request for all (under the default budget)."""
    settings = settings_for(es_url, source_index, Case("max", "none"))
    client = es_client.connect(settings.es)
    metrics = ["steady", "gaps", "sparse", "late", "flat"]
    ends = ENDS[-20::5]
    together = plan_requests(client, settings, metrics, ends)
    assert (together.batches, together.parted) == ((tuple(metrics),), ())
    want = [r for end in ends for r in compute_window_surprise(client, settings, metrics, end, together)]
    apart = plan_requests(client, settings, metrics, ends, Budget(buckets=250))
    assert len(apart.batches) >= 3 and not apart.parted
    assert all(sum(apart.caps[m] for m in batch) * 18 <= 250 for batch in apart.batches)
    got = [r for end in ends for r in compute_window_surprise(client, settings, metrics, end, apart)]
    assert_same(got, want)
    assert len(got) == len(ends) * len(metrics)


def test_a_metric_with_more_series_than_counted_is_asked_in_parts(source_index: str, es_url: str) -> None:
    """The count sees the windows' last buckets only; a cap below the series a window has makes the request report
    the rest (sum_other_doc_count), and the metric is asked in parts, to the same numbers."""
    settings = settings_for(es_url, source_index, Case("max", "none"))
    client = es_client.connect(settings.es)
    metrics = ["steady", "gaps"]
    end = ENDS[-1]
    plan = plan_requests(client, settings, metrics, [end])
    want = compute_window_surprise(client, settings, metrics, end, plan)
    capped = RequestPlan(plan.batches, plan.parted, dict.fromkeys(metrics, 2))
    got = compute_window_surprise(client, settings, metrics, end, capped)
    assert all(r.top_series for r in got)  # the parts' answer: every series' S, hence the top series too
    assert_same([dataclasses.replace(r, top_series=()) for r in got], want)
    assert all(r.series_count > 2 for r in got)


def test_backfill_writes_the_per_window_documents(es: Elasticsearch, es_url: str, source_index: str) -> None:
    case = Case("max", "none")
    prefix = f"atlas-test-{uuid.uuid4().hex[:12]}"
    settings = settings_for(es_url, source_index, case, prefix)
    client = es_client.connect(settings.es)
    try:
        setup_indices(client, settings)
        job.backfill(settings, client, ENDS[0], ENDS[-1])
        index = f"{prefix}-surprise"
        es.indices.refresh(index=index)
        stored = {h["_id"]: h["_source"] for h in es.search(index=index, body={"size": 10_000})["hits"]["hits"]}
        metrics = sorted({str(d["metric"]) for d in stored.values()})
        # Only the windows of anomalies carry their top series (so does a run: test_job compares the two).
        flagged = {(a.metric, a.window_end) for a in results.read_anomalies(client, settings, ENDS[0], ENDS[-1])}
        want = [
            with_top_series(client, settings, r) if (r.metric, r.window_end) in flagged else r
            for end in ENDS
            for r in compute_window_surprise(client, settings, metrics, end)
        ]
        expected = {results.surprise_id(settings.results.job, r.metric, r.window_end): r for r in want}
        assert set(stored) == set(expected)
        for doc_id, record in expected.items():
            got, wanted = flat(stored[doc_id]), flat(results.surprise_document(settings, record))
            assert got.keys() == wanted.keys(), doc_id
            for key, value in wanted.items():
                same = got[key] == pytest.approx(value, rel=1e-9) if isinstance(value, float) else got[key] == value
                assert same, (doc_id, key, got[key], value)
    finally:
        for name in es.indices.get(index=f"{prefix}*", expand_wildcards="all"):
            es.indices.delete(index=name)
        es_client.delete_index_templates(client, prefix)


def test_a_window_above_the_bucket_limit_is_computed_in_parts(es: Elasticsearch, es_url: str) -> None:
    """2,000 series x (12 + 6) buckets is more than a search.max_buckets of 20,000 allows in one request (a node's
    default allows more, and a request far above that runs a 1 GB node out of heap before the limit stops it): the
    hourly run splits the series, halves a part the cluster refuses, and computes the percentiles across the parts,
    as the reference."""
    index = f"atlas-test-{uuid.uuid4().hex[:12]}-wide"
    rng = np.random.default_rng(5)
    hours, series = 20, 2000
    frame = pd.DataFrame(
        [
            (START + timedelta(hours=h, minutes=20), "many", f"s{s:04d}", 10.0 + s % 7 + rng.normal(0, 1))
            for h in range(hours)
            for s in range(series)
            if (h, s % 10) != (9, 3)  # a gap in every tenth series
        ],
        columns=["timestamp", "metric", "series", "value"],
    )
    settings = settings_for(es_url, index, Case("max", "zscore"))
    client = es_client.connect(settings.es)
    docs = (
        {"@timestamp": ts.isoformat(), "metric": m, "query": q, "value": v} for ts, m, q, v in frame.itertuples(False)
    )
    try:
        load.load_documents(client, settings.source, index, docs)
        es.cluster.put_settings(body={"transient": {"search.max_buckets": 20_000}})
        end = START + timedelta(hours=hours)
        whole = build_surprise_request(settings, ["many"], end)
        with pytest.raises(EsQueryRejected, match="too many buckets"):  # the premise: one request is refused
            es_client.search(client, index, whole.body, filter_path=whole.filter_path)
        (got,) = compute_window_surprise(client, settings, ["many"], end)
        want = reference_window(frame, settings.surprise, end)["many"].result
        assert_same([got], [want])
        assert got.series_count == series
    finally:
        es.cluster.put_settings(body={"transient": {"search.max_buckets": None}})
        es.indices.delete(index=index)

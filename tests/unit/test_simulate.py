"""Unit tests for the blog's simulator: disruptions, determinism, value ranges, truth intervals, validation."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from atlas.clock import parse_instant
from atlas.errors import DataError
from atlas.simulate import (
    Disruption,
    SimulationSpec,
    TruthInterval,
    count_documents,
    metric_name,
    node_name,
    query_name,
    resolve_disruptions,
    simulate_documents,
    truth_intervals,
    write_truth_csv,
)

BLOG = SimulationSpec()
# Small enough to be quick, large enough to hold every blog disruption (the last ends at hour 521).
SMALL = SimulationSpec(metrics=5, queries=60, nodes=3, hours=530)


def stream_hash(docs: Iterable[dict[str, object]]) -> str:
    digest = hashlib.sha256()
    for doc in docs:
        digest.update(json.dumps(doc, sort_keys=True).encode())
    return digest.hexdigest()


def test_blog_scenario_resolves_to_the_eight_disruptions() -> None:
    got = [(d.kind, d.first_hour, d.last_hour, len(d.members)) for d in resolve_disruptions(BLOG)]
    assert got == [
        ("metric", 505, 521, 3),
        ("metric", 145, 151, 2),
        ("node", 279, 298, 1),
        ("metric", 240, 243, 1),
        ("query", 352, 355, 39),
        ("metric", 172, 181, 2),
        ("node", 334, 337, 1),
        ("query", 272, 275, 12),
    ]
    fixed = [d for d in resolve_disruptions(BLOG) if d.kind != "query"]
    assert [d.members for d in fixed] == [(0, 3, 4), (3, 4), (0,), (1,), (0, 2), (0,)]
    for d in resolve_disruptions(BLOG):
        assert len(set(d.members)) == len(d.members)
        assert all(0 <= q < BLOG.queries for q in d.members)


def test_query_members_depend_on_the_seed_only() -> None:
    def queries(spec: SimulationSpec) -> list[tuple[int, ...]]:
        return [d.members for d in resolve_disruptions(spec) if d.kind == "query"]

    assert queries(BLOG) == queries(SimulationSpec())
    assert queries(BLOG) == queries(dataclasses.replace(BLOG, nodes=2, metrics=1))
    assert queries(BLOG) != queries(dataclasses.replace(BLOG, seed=1))


def test_scenario_none_has_no_disruptions() -> None:
    spec = dataclasses.replace(BLOG, scenario="none")
    assert resolve_disruptions(spec) == ()
    assert truth_intervals(spec) == []


def test_count_documents() -> None:
    assert count_documents(BLOG) == 45_000_000
    spec = SimulationSpec(metrics=2, queries=3, nodes=4, hours=5)
    assert count_documents(spec) == sum(1 for _ in simulate_documents(spec)) == 120


def test_documents_have_the_documented_shape() -> None:
    spec = SimulationSpec(metrics=2, queries=3, nodes=2, hours=3, start=datetime(2024, 1, 1, tzinfo=UTC))
    docs = list(simulate_documents(spec))
    assert docs[0]["_id"] == "metric_0|query_0|node_0|0"
    assert docs[0]["@timestamp"] == "2024-01-01T00:00:00Z"
    assert docs[-1]["@timestamp"] == "2024-01-01T02:00:00Z"
    assert docs[-1]["_id"] == "metric_1|query_2|node_1|2"
    assert len({d["_id"] for d in docs}) == len(docs)
    for doc in docs:
        assert set(doc) == {"_id", "@timestamp", "metric", "query", "node", "value"}
        assert type(doc["value"]) is float and np.isfinite(doc["value"])
        metric, query, node, hour = str(doc["_id"]).split("|")
        assert (doc["metric"], doc["query"], doc["node"]) == (metric, query, node)
        assert doc["@timestamp"] == f"2024-01-01T{int(hour):02d}:00:00Z"


def test_names() -> None:
    assert (metric_name(0), query_name(7), node_name(3)) == ("metric_0", "query_7", "node_3")
    assert query_name(123) == "query_123"


def test_same_seed_same_documents_other_seed_different() -> None:
    spec = SimulationSpec(metrics=2, queries=5, nodes=3, hours=300, seed=7)
    first = list(itertools.islice(simulate_documents(spec), 200))
    assert first == list(itertools.islice(simulate_documents(spec), 200))
    assert stream_hash(simulate_documents(spec)) == stream_hash(simulate_documents(spec))
    other = dataclasses.replace(spec, seed=8)
    assert stream_hash(simulate_documents(other)) != stream_hash(simulate_documents(spec))
    assert [d["value"] for d in first] != [d["value"] for d in itertools.islice(simulate_documents(other), 200)]
    assert [d["_id"] for d in first] == [d["_id"] for d in itertools.islice(simulate_documents(other), 200)]


@pytest.fixture(scope="module")
def small_values() -> np.ndarray:
    """SMALL's values as an array indexed [hour, metric, query, node]."""
    values = np.array([d["value"] for d in simulate_documents(SMALL)], dtype=float)
    return values.reshape(SMALL.hours, SMALL.metrics, SMALL.queries, SMALL.nodes)


def covered(spec: SimulationSpec, disruptions: Iterable[Disruption]) -> np.ndarray:
    """Boolean [hour, metric, query, node]: which tuple-hours the disruptions switch."""
    mask = np.zeros((spec.hours, spec.metrics, spec.queries, spec.nodes), dtype=bool)
    for d in disruptions:
        hours = slice(d.first_hour, d.last_hour + 1)
        members = list(d.members)
        if d.kind == "metric":
            mask[hours, members, :, :] = True
        elif d.kind == "query":
            mask[hours, :, members, :] = True
        else:
            mask[hours, :, :, members] = True
    return mask


@pytest.mark.parametrize("kind", ["node", "query", "metric"])
def test_disrupted_tuple_hours_come_from_the_disrupted_distribution(kind: str, small_values: np.ndarray) -> None:
    disruptions = resolve_disruptions(SMALL)
    of_kind = covered(SMALL, [d for d in disruptions if d.kind == kind])
    assert of_kind.any()
    assert small_values[of_kind].mean() > 55
    # During the same hours, tuples no disruption covers stay regular.
    hours = of_kind.any(axis=(1, 2, 3))
    untouched = ~covered(SMALL, disruptions)
    untouched[~hours] = False
    assert untouched.any()
    assert small_values[untouched].mean() < 45


def test_uncovered_tuple_hours_are_regular(small_values: np.ndarray) -> None:
    regular = small_values[~covered(SMALL, resolve_disruptions(SMALL))]
    assert 25 < regular.mean() < 35
    # Node 1, metric 1 and a query no query disruption hits: only metric 1's hours 240-243 switch it.
    hit = {q for d in resolve_disruptions(SMALL) if d.kind == "query" for q in d.members}
    query = min(set(range(SMALL.queries)) - hit)
    switched = covered(SMALL, resolve_disruptions(SMALL))[:, 1, query, 1]
    assert list(np.flatnonzero(switched)) == [240, 241, 242, 243]
    series = small_values[:, 1, query, 1][~switched]
    assert 20 - 2 < series.mean() < 40 + 2 and series.max() < 40 + 6 * 10


def test_scenario_none_is_regular_throughout() -> None:
    spec = dataclasses.replace(SMALL, queries=5, scenario="none")
    values = np.array([d["value"] for d in simulate_documents(spec)])
    assert values.mean() < 45


def test_lognormal_matches_the_normal_moments_per_tuple() -> None:
    spec = SimulationSpec(metrics=1, queries=3, nodes=2, hours=6000, scenario="none", seed=3)
    shape = (spec.hours, spec.queries * spec.nodes)
    normal = np.array([d["value"] for d in simulate_documents(spec)]).reshape(shape)
    lognormal_spec = dataclasses.replace(spec, distribution="lognormal")
    lognormal = np.array([d["value"] for d in simulate_documents(lognormal_spec)]).reshape(shape)
    assert (lognormal > 0).all()
    # The same seed draws the same per-tuple mean and std, so both sample means estimate the same number.
    assert np.all((lognormal.mean(axis=0) > 20 - 1) & (lognormal.mean(axis=0) < 40 + 1))
    np.testing.assert_allclose(lognormal.mean(axis=0), normal.mean(axis=0), rtol=0.03)
    np.testing.assert_allclose(lognormal.std(axis=0), normal.std(axis=0), rtol=0.15)


def test_lognormal_blog_values_are_positive_and_finite() -> None:
    spec = dataclasses.replace(SMALL, queries=4, distribution="lognormal")
    values = np.array([d["value"] for d in simulate_documents(spec)])
    assert (values > 0).all() and np.isfinite(values).all()


@dataclass(frozen=True)
class ScaleCase:
    id: str
    spec: SimulationSpec
    expected: list[tuple[str, int, int, tuple[int, ...] | int]]  # int = how many queries


SCALE_CASES = [
    ScaleCase(
        "two-metrics-one-node-ten-queries-300h",
        SimulationSpec(metrics=2, queries=10, nodes=1, hours=300),
        [("node", 279, 298, (0,)), ("metric", 240, 243, (1,)), ("metric", 172, 181, (0,)), ("query", 272, 275, 10)],
    ),
    ScaleCase(
        "hours-clip-the-node-disruption",
        SimulationSpec(metrics=1, queries=50, nodes=2, hours=290),
        [("node", 279, 289, (0,)), ("metric", 172, 181, (0,)), ("query", 272, 275, 12)],
    ),
    ScaleCase(
        "last-hour-of-a-disruption-is-kept",
        SimulationSpec(metrics=5, queries=3, nodes=1, hours=522),
        [
            ("metric", 505, 521, (0, 3, 4)),
            ("metric", 145, 151, (3, 4)),
            ("node", 279, 298, (0,)),
            ("metric", 240, 243, (1,)),
            ("query", 352, 355, 3),
            ("metric", 172, 181, (0, 2)),
            ("node", 334, 337, (0,)),
            ("query", 272, 275, 3),
        ],
    ),
    ScaleCase(
        "first-hour-only",
        SimulationSpec(metrics=5, queries=1, nodes=1, hours=506),
        [
            ("metric", 505, 505, (0, 3, 4)),
            ("metric", 145, 151, (3, 4)),
            ("node", 279, 298, (0,)),
            ("metric", 240, 243, (1,)),
            ("query", 352, 355, 1),
            ("metric", 172, 181, (0, 2)),
            ("node", 334, 337, (0,)),
            ("query", 272, 275, 1),
        ],
    ),
    ScaleCase("before-every-disruption", SimulationSpec(hours=145), []),
]


@pytest.mark.parametrize("case", SCALE_CASES, ids=[c.id for c in SCALE_CASES])
def test_smaller_scales_drop_and_clip(case: ScaleCase) -> None:
    got = resolve_disruptions(case.spec)
    simplified = [(d.kind, d.first_hour, d.last_hour, len(d.members) if d.kind == "query" else d.members) for d in got]
    assert simplified == case.expected
    for d in got:
        assert d.last_hour < case.spec.hours
        if d.kind == "query":
            assert all(0 <= q < case.spec.queries for q in d.members)


def test_truth_intervals_of_the_blog() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    got = truth_intervals(BLOG)
    assert len(got) == 12

    def interval(first: int, last: int, metric: str | None) -> TruthInterval:
        return TruthInterval(start + timedelta(hours=first), start + timedelta(hours=last + 1), metric)

    assert got == [
        interval(505, 521, "metric_0"),
        interval(505, 521, "metric_3"),
        interval(505, 521, "metric_4"),
        interval(145, 151, "metric_3"),
        interval(145, 151, "metric_4"),
        interval(279, 298, None),
        interval(240, 243, "metric_1"),
        interval(352, 355, None),
        interval(172, 181, "metric_0"),
        interval(172, 181, "metric_2"),
        interval(334, 337, None),
        interval(272, 275, None),
    ]
    assert got[0].start == datetime(2024, 1, 22, 1, tzinfo=UTC)
    assert got[0].end == datetime(2024, 1, 22, 18, tzinfo=UTC)


def test_truth_intervals_follow_a_non_utc_start() -> None:
    start = datetime(2024, 3, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    got = truth_intervals(dataclasses.replace(BLOG, start=start))
    assert got[0].start == datetime(2024, 3, 22, 1, tzinfo=UTC)
    assert got[0].start.tzinfo is UTC and got[0].end.tzinfo is UTC


def test_truth_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    intervals = truth_intervals(BLOG)
    write_truth_csv(intervals, path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "start,end,metric"
    assert lines[1] == "2024-01-22T01:00:00Z,2024-01-22T18:00:00Z,metric_0"
    assert lines[6] == "2024-01-12T15:00:00Z,2024-01-13T11:00:00Z,"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    parsed = [TruthInterval(parse_instant(r["start"]), parse_instant(r["end"]), r["metric"] or None) for r in rows]
    assert parsed == intervals
    assert [p.name for p in tmp_path.iterdir()] == ["truth.csv"]


def test_truth_csv_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    path.write_text("old\n", encoding="utf-8")
    write_truth_csv([], path)
    assert path.read_text(encoding="utf-8") == "start,end,metric\n"


@dataclass(frozen=True)
class BadSpec:
    id: str
    spec: SimulationSpec
    message: str


BAD_SPECS = [
    BadSpec("metrics", SimulationSpec(metrics=0), "--metrics must be >= 1, got 0"),
    BadSpec("queries", SimulationSpec(queries=-1), "--queries must be >= 1, got -1"),
    BadSpec("nodes", SimulationSpec(nodes=0), "--nodes must be >= 1, got 0"),
    BadSpec("hours-zero", SimulationSpec(hours=0), "--hours must be >= 1, got 0"),
    BadSpec("hours-too-many", SimulationSpec(hours=100_001), "--hours must be <= 100000, got 100001"),
    BadSpec("seed", SimulationSpec(seed=-1), "--seed must be between 0 and 4294967295, got -1"),
    BadSpec("seed-huge", SimulationSpec(seed=2**32), "--seed must be between 0 and 4294967295, got 4294967296"),
    BadSpec("start-naive", SimulationSpec(start=datetime(2024, 1, 1)), "--start must be timezone-aware"),
    BadSpec("metrics-too-many", SimulationSpec(metrics=1001), "--metrics must be <= 1000, got 1001"),
    BadSpec("queries-too-many", SimulationSpec(queries=100_001), "--queries must be <= 100000, got 100001"),
    BadSpec("nodes-too-many", SimulationSpec(nodes=1001), "--nodes must be <= 1000, got 1001"),
    BadSpec(
        "tuples-too-many",
        SimulationSpec(metrics=100, queries=1000, nodes=100),
        "--metrics x --queries x --nodes must be <= 2,000,000, got 10,000,000",
    ),
    BadSpec(
        "start-before-1970",
        SimulationSpec(start=datetime(1969, 12, 31, 23, tzinfo=UTC)),
        r"--start 1969-12-31T23:00:00Z is outside the instants atlas computes with, 1970-01-01 \(inclusive\)",
    ),
    BadSpec(
        "last-hour-after-2100",
        SimulationSpec(hours=600, start=datetime(2099, 12, 10, tzinfo=UTC)),
        r"--start plus --hours: the last hour, 2100-01-03T23:00:00Z, is outside the instants atlas computes with",
    ),
]


@pytest.mark.parametrize("case", BAD_SPECS, ids=[c.id for c in BAD_SPECS])
def test_invalid_specs_name_the_field(case: BadSpec) -> None:
    with pytest.raises(DataError, match="^" + case.message) as info:
        simulate_documents(case.spec)  # raises at the call, before the first document
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="^" + case.message):
        truth_intervals(case.spec)


def hourly_query_means(spec: SimulationSpec) -> dict[tuple[str, str, str], float]:
    """(metric, query, timestamp) -> mean value over nodes, from the generated documents."""
    sums: dict[tuple[str, str, str], list[float]] = {}
    for doc in simulate_documents(spec):
        sums.setdefault((str(doc["metric"]), str(doc["query"]), str(doc["@timestamp"])), []).append(float(doc["value"]))  # type: ignore[arg-type]
    return {key: sum(v) / len(v) for key, v in sums.items()}


PRODUCTION_LIKE = SimulationSpec(metrics=3, queries=10, nodes=2, hours=100, scenario="none", seed=4)


def test_every_scenario_counts_what_it_yields() -> None:
    for scenario in ("blog", "none", "seasonal", "level-shift", "scales"):
        spec = dataclasses.replace(PRODUCTION_LIKE, scenario=scenario)  # type: ignore[arg-type]
        assert sum(1 for _ in simulate_documents(spec)) == count_documents(spec), scenario


def test_seasonal_multiplies_each_series_by_its_own_daily_and_weekly_cycle() -> None:
    plain = hourly_query_means(dataclasses.replace(PRODUCTION_LIKE, scenario="blog"))
    seasonal = hourly_query_means(dataclasses.replace(PRODUCTION_LIKE, scenario="seasonal"))
    ratios = np.array([seasonal[k] / plain[k] for k in sorted(plain)])
    assert ratios.min() >= 1 - 0.7 and ratios.max() <= 1 + 0.7  # daily 50% + weekly 20% at most
    assert ratios.std() > 0.05  # the cycles are there, different per series and hour


def test_level_shift_raises_one_metric_for_good_and_labels_its_first_day() -> None:
    spec = dataclasses.replace(PRODUCTION_LIKE, scenario="level-shift")
    plain = hourly_query_means(dataclasses.replace(spec, scenario="blog"))
    shifted = hourly_query_means(spec)
    shift = spec.start + timedelta(hours=70)
    for (metric, query, ts), value in shifted.items():
        expected = 1.5 if metric == "metric_2" and parse_instant(ts) >= shift else 1.0
        assert value == pytest.approx(expected * plain[(metric, query, ts)], rel=1e-12)
    assert truth_intervals(spec)[-1] == TruthInterval(shift, shift + timedelta(hours=24), "metric_2")


def test_scales_spread_series_levels_and_let_series_start_and_stop() -> None:
    spec = dataclasses.replace(PRODUCTION_LIKE, queries=20, scenario="scales")
    means = hourly_query_means(spec)
    levels = [np.mean([v for (m, q, _), v in means.items() if (m, q) == key]) for key in {k[:2] for k in means}]
    assert max(levels) / min(levels) > 100
    hours_of = {q: {ts for (_, qq, ts) in means if qq == q} for q in {k[1] for k in means}}
    assert min(parse_instant(ts) for ts in hours_of["query_0"]) == spec.start + timedelta(hours=50)  # born
    assert max(parse_instant(ts) for ts in hours_of["query_4"]) == spec.start + timedelta(hours=65)  # stopped
    assert len(hours_of["query_19"]) == 100

"""Influencers of an event, grouped events (by a series field, across metrics), criticality and minimum durations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from atlas.errors import ConfigError
from atlas.events import anomaly_events
from atlas.grouping import criticality, group_overlapping_events
from atlas.influencers import event_influencers, format_influencers
from atlas.queries import SERIES_KEY_SEPARATOR
from atlas.records import Anomaly, AnomalyEvent, Influencer, SeriesSurprise
from atlas.settings import GroupingSettings, load_settings

T0 = datetime(2024, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
FIELDS = ["node", "query"]


def point(metric: str, h: int, tops: dict[str, float], z: float = 40.0, percentile: float = 90.0) -> Anomaly:
    """An anomaly at hour h, z standard deviations (std 1) above a typical 10; its event id is set by `run`."""
    series = tuple(SeriesSurprise(k, v) for k, v in tops.items())
    return Anomaly(metric, percentile, T0 + h * H, 10.0 + z, 10.0, 1.0, 13.0, z, "high", "", series)


def run(points: list[Anomaly]) -> tuple[list[AnomalyEvent], list[Anomaly]]:
    """Give each run of consecutive points of one metric and percentile its event id, as the threshold stage does."""
    events = anomaly_events(points, H)
    fixed = []
    for a in points:
        (e,) = [
            e
            for e in events
            if (e.metric, e.percentile) == (a.metric, a.percentile) and e.start <= a.window_end <= e.end
        ]
        fixed.append(Anomaly(**{**a.__dict__, "event_id": e.event_id}))
    return events, fixed


def test_influencer_shares_of_series_and_of_each_field() -> None:
    points = [
        point("cpu", 0, {"n1|q1": 30.0, "n2|q1": 10.0}),
        point("cpu", 1, {"n1|q2": 40.0, "n1|q1": 20.0}),
    ]
    found = event_influencers(points, FIELDS)
    assert found == (
        Influencer("series", "n1|q1", 0.5),
        Influencer("series", "n1|q2", 0.4),
        Influencer("series", "n2|q1", 0.1),
        Influencer("node", "n1", 0.9),
        Influencer("node", "n2", 0.1),
        Influencer("query", "q1", 0.6),
        Influencer("query", "q2", 0.4),
    )
    assert (
        format_influencers(found)
        == "n1|q1 50%, n1|q2 40%, n2|q1 10%; node=n1 90%, node=n2 10%; query=q1 60%, query=q2 40%"
    )


def test_influencers_with_one_field_zero_surprise_and_unsplittable_keys() -> None:
    assert event_influencers([point("cpu", 0, {"q1": 3.0, "q2": 1.0})], ["query"]) == (
        Influencer("series", "q1", 0.75),
        Influencer("series", "q2", 0.25),
    )
    flat = event_influencers([point("cpu", 0, {"a|x": 0.0, "b|y": 0.0})], FIELDS)
    assert [i.share for i in flat if i.field == "series"] == [0.5, 0.5]
    odd = event_influencers([point("cpu", 0, {"a|b|c": 2.0, "n1|q1": 2.0})], FIELDS)
    assert [(i.field, i.value, i.share) for i in odd if i.field == "node"] == [("node", "n1", 0.5)]
    assert event_influencers([point("cpu", 0, {})], FIELDS) == ()
    assert SERIES_KEY_SEPARATOR == "|"


@dataclass(frozen=True)
class Crit:
    score: int
    metrics: int
    want: str


CRITICALITY = {
    "one metric, score 40": Crit(40, 1, "low"),
    "one metric, score 74": Crit(74, 1, "low"),
    "two metrics, score 49": Crit(49, 2, "low"),
    "one metric, score 75": Crit(75, 1, "medium"),
    "two metrics, score 50": Crit(50, 2, "medium"),
    "three metrics, score 30": Crit(30, 3, "medium"),
    "two metrics, score 75": Crit(75, 2, "high"),
    "three metrics, score 50": Crit(50, 3, "high"),
    "five metrics, score 100": Crit(100, 5, "high"),
}


@pytest.mark.parametrize("case", CRITICALITY.values(), ids=CRITICALITY.keys())
def test_criticality_steps(case: Crit) -> None:
    assert criticality(case.score, case.metrics, GroupingSettings()) == case.want


def test_without_a_field_metrics_at_overlapping_hours_are_one_event_ordered_by_which_turned_first() -> None:
    events, points = run(
        [
            point("mem", 2, {"n1|q1": 5.0}),
            point("mem", 3, {"n1|q1": 5.0}),
            point("cpu", 3, {"n1|q1": 5.0}, z=4.0),
            point("disk", 3, {"n1|q1": 5.0}, z=60.0),  # turned at the same hour as cpu, with a higher score
            point("cpu", 4, {"n1|q1": 5.0}),
            point("net", 9, {"n2|q1": 5.0}, z=3.5),  # later, alone
        ]
    )
    groups = group_overlapping_events(events, points, FIELDS, GroupingSettings(), H)
    assert [(g.label, g.start.hour, g.end.hour, g.criticality) for g in groups] == [
        ("mem, disk, cpu", 2, 4, "high"),
        ("net", 9, 9, "low"),
    ]
    assert [m.event.metric for m in groups[0].members] == ["mem", "disk", "cpu"]
    assert groups[0].group_id == "metrics|2024-03-01T02:00:00Z" and groups[0].field is None


def test_by_node_each_event_joins_the_nodes_that_carry_it() -> None:
    events, points = run(
        [
            point("cpu", 1, {"n1|q1": 9.0, "n1|q2": 8.0, "n2|q3": 1.0}),  # n1 94%
            point("mem", 2, {"n1|q1": 5.0, "n2|q1": 5.0}),  # n1 and n2 50% each
            point("disk", 2, {"a|q1": 1.0, "b|q1": 1.0, "c|q1": 1.0, "d|q1": 1.0, "e|q1": 1.0}),  # 20% each
        ]
    )
    groups = group_overlapping_events(events, points, FIELDS, GroupingSettings(field="node"), H)
    # cpu (hour 1) and mem (hour 2) do not overlap: two n1 events; mem (n1 and n2 at 50%) is under both nodes
    assert [(g.label, g.start.hour, [m.event.metric for m in g.members]) for g in groups] == [
        ("node=n1", 1, ["cpu"]),
        ("node=*", 2, ["disk"]),
        ("node=n1", 2, ["mem"]),
        ("node=n2", 2, ["mem"]),
    ]
    by_query = group_overlapping_events(events, points, FIELDS, GroupingSettings(field="node"), H, field="query")
    assert [(g.label, g.start.hour, len(g.members)) for g in by_query] == [("query=q1", 1, 1), ("query=q1", 2, 2)]
    low_share = GroupingSettings(field="query", min_share=0.4)  # cpu's q2 (44%) now counts too
    assert [g.label for g in group_overlapping_events(events, points, FIELDS, low_share, H)] == [
        "query=q1",
        "query=q2",
        "query=q1",
    ]


def test_groups_shorter_than_their_criticalitys_minimum_are_dropped() -> None:
    events, points = run(
        [point("cpu", 1, {"q": 1.0}, z=5.0), point("mem", 5, {"q": 1.0}, z=5.0), point("mem", 6, {"q": 1.0}, z=5.0)]
    )
    keep_all = group_overlapping_events(events, points, ["query"], GroupingSettings(), H)
    assert [(g.label, g.criticality) for g in keep_all] == [("cpu", "low"), ("mem", "low")]
    two_hours = GroupingSettings(min_durations=(2 * H, H, H))
    assert [g.label for g in group_overlapping_events(events, points, ["query"], two_hours, H)] == ["mem"]


def test_grouping_settings_are_checked_at_load() -> None:
    with pytest.raises(ConfigError, match=r"grouping\.field: .node. is not one of source\.series_fields"):
        load_settings(None, {"grouping.field": "node"})
    assert load_settings(None, {"grouping.field": "node", "source.series_fields": FIELDS}).grouping.field == "node"
    with pytest.raises(ConfigError, match=r"grouping\.min_durations"):
        load_settings(None, {"grouping.min_durations": ["1h"]})
    with pytest.raises(ConfigError, match=r"grouping\.score_levels"):
        load_settings(None, {"grouping.score_levels": [80, 50]})


def test_shares_that_round_to_zero_are_not_written() -> None:
    found = event_influencers([point("cpu", 0, {"n1|q1": 999.0, "n2|q2": 1.0})], FIELDS)
    assert format_influencers(found) == "n1|q1 100%; node=n1 100%; query=q1 100%"

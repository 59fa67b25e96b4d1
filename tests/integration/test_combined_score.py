"""DADS's combined score (surprise.combine_by): Elasticsearch equals reference.py; the job flags a node disruption."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import pandas as pd
import pytest
from elasticsearch import Elasticsearch

from atlas import es_client, job, results, simulate
from atlas.indices import setup_indices
from atlas.ingest import load
from atlas.reference import reference_combined
from atlas.settings import Settings, load_settings
from atlas.surprise import compute_combined_surprise
from tests.parity import assert_matches_reference

pytestmark = pytest.mark.integration

# The blog's second node disruption of node_0 (hours 334-337) is in range, a day and a half after anything else
# ended; 4 nodes, so the p90 of 4 sums is their largest.
SPEC = simulate.SimulationSpec(metrics=3, queries=6, nodes=4, hours=345, seed=5)
NAME = "node:all"


def settings_for(es_url: str, index: str, prefix: str) -> Settings:
    overrides = {
        "es.urls": [es_url],
        "source.index": index,
        "results.prefix": prefix,
        "surprise.normalization": "gaussian",
        "surprise.baseline": "mean",
        "surprise.combine_by": "node",
    }
    return load_settings(None, overrides)


@pytest.fixture
def indexed(es: Elasticsearch, es_url: str, index_name: str) -> Iterator[tuple[Settings, pd.DataFrame]]:
    settings = settings_for(es_url, f"{index_name}-source", index_name)
    docs = list(simulate.simulate_documents(SPEC))
    client = es_client.connect(settings.es)
    load.load_documents(client, settings.source, settings.source.index, docs, extra_keywords=["node"])
    frame = pd.DataFrame(
        [(pd.Timestamp(str(d["@timestamp"])), d["metric"], d["node"], d["value"]) for d in docs],
        columns=["timestamp", "metric", "series", "value"],
    )
    yield settings, frame


def test_combined_score_equals_the_reference(indexed: tuple[Settings, pd.DataFrame]) -> None:
    """At the defaults, and with the std over 3 days (surprise.scale_window 72) beside the baseline's 24 buckets."""
    default, frame = indexed
    longer_std = dataclasses.replace(default, surprise=dataclasses.replace(default.surprise, scale_window=72))
    client = es_client.connect(default.es)
    metrics = [simulate.metric_name(m) for m in range(SPEC.metrics)]
    compared = 0
    for settings in (default, longer_std):
        for hour in (30, 60, 200, 281, 300, 335):
            end = SPEC.start + timedelta(hours=hour)
            got = compute_combined_surprise(client, settings, metrics, end)
            want = reference_combined(frame, settings.surprise, end, metrics, NAME)
            assert want is not None
            assert [r.metric for r in got] == [NAME]
            assert_matches_reference(got[0], want, (settings.surprise.scale_window, end))
            compared += 1
    assert compared == 12


def test_the_job_flags_the_node_disruption_on_the_combined_score(indexed: tuple[Settings, pd.DataFrame]) -> None:
    settings, _ = indexed
    client = es_client.connect(settings.es)
    setup_indices(client, settings)
    first, last = SPEC.start + timedelta(hours=48), SPEC.start + timedelta(hours=SPEC.hours)
    job.backfill(settings, client, first, last)
    stored = {r.metric for r in results.read_surprise(client, settings, first, last)}
    assert NAME in stored
    combined = [a for a in results.read_anomalies(client, settings, first, last) if a.metric == NAME]
    disrupted = SPEC.start + timedelta(hours=335)  # the window ending an hour after node_0's first disrupted hour
    at_start = [a for a in combined if a.window_end == disrupted]
    assert at_start and at_start[0].top_series[0].series == "node_0"  # the disrupted node leads the combined score

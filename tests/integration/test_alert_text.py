"""The watch's text and the built-in alerts write a flagged point alike: on the real node, each point the watch
flags reads `p90 surprise X, typical Y, threshold Z, score S at T`, exactly as atlas/outputs/notify.py writes the
same point found by the Python threshold stage."""

from __future__ import annotations

import pandas as pd
import pytest
from elasticsearch import Elasticsearch

from atlas import es_client
from atlas.outputs.notify import point_phrase
from atlas.outputs.watch import execute_dry_run
from atlas.settings import load_settings
from atlas.threshold import select_anomalies
from tests.surprise_series import PERCENTILES, index_series, sample_series, window_ends

pytestmark = pytest.mark.integration


def test_each_flagged_point_reads_as_the_built_in_alert_writes_it(
    es: Elasticsearch, es_url: str, index_name: str
) -> None:
    overrides = {
        "es.urls": [es_url],
        "results.prefix": index_name,
        "surprise.percentiles": list(PERCENTILES),
        "threshold.window": 6,
        "threshold.lookback": 12,
        "threshold.sigmas": 3.0,
        "threshold.levels": [3.0, 4.0, 5.0],
        "alerts.watcher_slack_account": "ops",
    }
    settings = load_settings(None, overrides)
    client = es_client.connect(settings.es)
    values = sample_series()
    index_series(client, f"{index_name}-surprise", values)
    ends = window_ends()
    step = settings.surprise.step
    found = {
        (a.window_end, a.metric, a.percentile): a
        for (metric, p), raw in values.items()
        for a in select_anomalies(metric, p, pd.Series(raw, index=ends), settings.threshold, step)
    }
    checked, scores = 0, set[int]()
    for t in sorted({t for t, _, _ in found}):
        sections = _sections(execute_dry_run(client, settings, t).actions["slack"])
        for (end, metric, p), anomaly in found.items():
            if end == t:
                (line,) = [x for x in sections[metric] if x.startswith(f"  p{p:g} ")]
                assert line.startswith(f"  {point_phrase(anomaly)}, severity "), (line, point_phrase(anomaly))
                checked, scores = checked + 1, scores | {anomaly.score}
    assert checked >= 4 and 100 in scores and len(scores) >= 3  # spikes of several sizes and the flat stretch


def _sections(text: str) -> dict[str, list[str]]:
    """The watch's text split by metric: `metric cpu:` lines open a section of point lines."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("metric ") and line.endswith(":"):
            current = sections.setdefault(line[len("metric ") : -1], [])
        elif line.startswith("  "):
            current.append(line)
    return sections

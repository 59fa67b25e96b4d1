"""The watch on the real node: for every window end its search and condition flag exactly what the Python
threshold stage flags; its text names those points; and the node (no Watcher) gets a clear install error."""

from __future__ import annotations

import pytest
from elasticsearch import Elasticsearch

from atlas import es_client
from atlas.errors import OutputError
from atlas.outputs.watch import execute_dry_run, install_watch
from atlas.settings import Settings, load_settings
from tests.surprise_series import (
    FLOOR,
    PERCENTILES,
    RECOVERY,
    assert_recovery_matters,
    assert_the_floor_matters,
    flagged_by_python,
    flagged_in_payload,
    floor_series,
    index_series,
    recovery_series,
    sample_series,
    threshold_section,
    window_ends,
)

pytestmark = pytest.mark.integration


def settings_for(
    es_url: str,
    prefix: str,
    window: int,
    sigmas: float,
    lookback: int,
    min_value: float = 0.0,
    recovery: float = 0.0,
) -> Settings:
    overrides = {
        "es.urls": [es_url],
        "results.prefix": prefix,
        "surprise.percentiles": list(PERCENTILES),
        "alerts.watcher_slack_account": "ops",
    }
    threshold = threshold_section(window, sigmas, lookback, min_value, recovery)
    overrides |= {f"threshold.{key}": value for key, value in threshold.items()}
    return load_settings(None, overrides)


@pytest.mark.parametrize(
    ("window", "sigmas", "lookback", "min_value", "recovery"),
    [
        (6, 3.0, 6, 0.0, 0.0),
        (4, 2.0, 4, 0.0, 0.0),
        (4, 2.0, 12, 0.0, 0.0),
        (6, 3.0, 6, FLOOR, 0.0),
        (4, 2.0, 12, FLOOR, 0.0),
        (4, 2.0, 12, FLOOR, RECOVERY),
    ],
    ids=[
        "window6-sigmas3",
        "window4-sigmas2",
        "window4-sigmas2-unflagged-from-12",
        "window6-sigmas3-floor",
        "window4-sigmas2-unflagged-from-12-floor",
        "window4-sigmas2-unflagged-from-12-floor-recovery",
    ],
)
def test_watch_flags_what_the_threshold_stage_flags(
    es: Elasticsearch,
    es_url: str,
    index_name: str,
    window: int,
    sigmas: float,
    lookback: int,
    min_value: float,
    recovery: float,
) -> None:
    settings = settings_for(es_url, index_name, window, sigmas, lookback, min_value, recovery)
    values = recovery_series() if recovery else floor_series() if min_value else sample_series()
    index_series(es_client.connect(settings.es), f"{index_name}-surprise", values)
    expected = flagged_by_python(values, settings.threshold)
    if min_value:
        assert_the_floor_matters(values, settings.threshold)
    if recovery:
        assert_recovery_matters(values, settings.threshold)
    client = es_client.connect(settings.es)
    flagged_somewhere = 0
    for end in window_ends():
        t = end.to_pydatetime()
        run = execute_dry_run(client, settings, t)
        assert flagged_in_payload(run.payload, t) == expected[t], t
        assert run.condition_met == bool(expected[t]), t
        if expected[t]:
            flagged_somewhere += 1
            text = run.actions["slack"]
            for metric, p in expected[t]:
                assert f"metric {metric}:" in text and f"p{p:g} " in text
        else:
            assert run.actions == {}
    assert flagged_somewhere >= 4  # the spikes and the rise after the flat stretch


def test_install_says_the_cluster_has_no_watcher(es_url: str, index_name: str) -> None:
    settings = settings_for(es_url, index_name, 6, 3.0, 6)
    with pytest.raises(OutputError, match="has no Watcher"):
        install_watch(es_client.connect(settings.es), settings)

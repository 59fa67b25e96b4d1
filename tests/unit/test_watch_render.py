"""The rendered watch: its structure, Mustache kept for Watcher, actions only for configured accounts, no secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atlas.es_server import DEFAULT_API_VERSION
from atlas.outputs.mustache import render_mustache
from atlas.outputs.watch import build_watch, write_watches
from atlas.settings import load_settings

CURRENT = DEFAULT_API_VERSION


def settings(**alerts: object):  # type: ignore[no-untyped-def]
    overrides = {f"alerts.{k}": v for k, v in alerts.items()} | {"surprise.percentiles": [90, 99]}
    return load_settings(None, overrides)


def test_default_watch_structure() -> None:
    watch = build_watch(settings(), CURRENT)
    assert watch["trigger"] == {"schedule": {"interval": "1h"}}
    assert watch["condition"] == {"compare": {"ctx.payload.aggregations.flagged_metrics.count": {"gt": 0}}}
    assert watch["throttle_period"] == "24h"
    request = watch["input"]["search"]["request"]
    assert request["indices"] == ["atlas-surprise"]
    window_range = request["body"]["query"]["bool"]["filter"][1]["range"]["window_end"]
    assert window_range == {"gt": "{{ctx.trigger.scheduled_time}}||-73h", "lte": "{{ctx.trigger.scheduled_time}}"}
    aggs = request["body"]["aggs"]["metrics"]["aggs"]
    assert sorted(aggs) == ["keep", "points_p90", "points_p99"]
    points = aggs["points_p99"]["aggs"]
    assert points["mean"]["moving_fn"]["window"] == 72  # threshold.lookback: the unflagged history's reach
    assert "int w = 24; double k = 6.0; double f = 0.0;" in points["mean"]["moving_fn"]["script"]
    assert points["threshold"]["bucket_script"]["script"]["params"] == {"sigmas": 6.0, "min_value": 0.0}
    assert "bucket_selector" in points["flagged"]
    assert watch["actions"] == {}  # no account configured, no action


def test_the_floor_reaches_every_threshold_of_the_watch() -> None:
    watch = build_watch(load_settings(None, {"threshold.min_value": 2.5}), CURRENT)
    points = watch["input"]["search"]["request"]["body"]["aggs"]["metrics"]["aggs"]["points_p90"]["aggs"]
    assert "double f = 2.5;" in points["mean"]["moving_fn"]["script"]  # the history's unflagged rule
    assert "double f = 2.5;" in points["std"]["moving_fn"]["script"]
    assert points["threshold"]["bucket_script"]["script"]["params"] == {"sigmas": 6.0, "min_value": 2.5}
    assert points["severity"]["bucket_script"]["script"]["params"] == {"levels": [6.0, 8.0, 10.0], "min_value": 2.5}


def test_actions_for_configured_accounts_keep_mustache_for_watcher() -> None:
    watch = build_watch(
        settings(watcher_slack_account="ops", watcher_email_account="mail", email_to=["sre@example.com"]), CURRENT
    )
    slack, email = watch["actions"]["slack"], watch["actions"]["email"]
    assert slack["slack"]["account"] == "ops" and slack["throttle_period"] == "24h"
    assert email["email"]["to"] == ["sre@example.com"] and email["email"]["account"] == "mail"
    text = slack["slack"]["message"]["text"]
    assert text == email["email"]["body"]["text"]
    assert "{{#ctx.payload.aggregations.metrics.buckets}}" in text and "{{#points_p99.buckets}}" in text
    assert "{%" not in json.dumps(watch)


@pytest.mark.parametrize(
    ("version", "key"),
    [((6, 8), "interval"), ((7, 1), "interval"), ((7, 2), "fixed_interval"), ((8, 19), "fixed_interval")],
)
def test_the_histogram_names_its_interval_as_the_clusters_version_does(version: tuple[int, int], key: str) -> None:
    aggs = build_watch(settings(), version)["input"]["search"]["request"]["body"]["aggs"]["metrics"]["aggs"]
    histograms = [aggs[name]["date_histogram"] for name in ("points_p90", "points_p99")]
    assert all(h[key] == "1h" and len({"interval", "fixed_interval"} & set(h)) == 1 for h in histograms)


def test_secrets_never_reach_the_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_SLACK_WEBHOOK_URL", "https://hooks.example.com/services/T0/B0/secret-token")
    monkeypatch.setenv("ATLAS_SMTP_PASSWORD", "hunter2")
    text = json.dumps(build_watch(settings(watcher_slack_account="ops"), CURRENT))
    assert "secret-token" not in text and "hunter2" not in text


def test_write_watches_writes_sorted_json(tmp_path: Path) -> None:
    (path,) = write_watches(settings(), tmp_path, CURRENT)
    assert path.name == "atlas-default.json"
    text = path.read_text()
    assert text.endswith("}\n") and json.loads(text) == build_watch(settings(), CURRENT)


@pytest.mark.parametrize(
    ("template", "context", "expected"),
    [
        ("{{a.b}}", {"a": {"b": 1.5}}, "1.5"),
        ("{{#xs}}[{{v}}]{{/xs}}", {"xs": [{"v": 1}, {"v": 2}]}, "[1][2]"),
        ("{{^xs}}none{{/xs}}", {"xs": []}, "none"),
        ("{{hits.0.name}}", {"hits": [{"name": "q1"}]}, "q1"),
        (
            "{{#outer}}{{key}}:{{#inner}}{{key}}{{/inner}}{{/outer}}",
            {"outer": [{"key": "m", "inner": [{"key": 7}]}]},
            "m:7",
        ),
        ("{{missing}}-", {}, "-"),
    ],
    ids=["dotted", "section", "inverted", "index", "nested scopes", "missing"],
)
def test_mustache_subset(template: str, context: dict, expected: str) -> None:  # type: ignore[type-arg]
    assert render_mustache(template, context) == expected

"""`atlas query` prints the request for one window without any network; it needs to know the metrics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from atlas.cli import cli
from atlas.templating import environment, template_dirs


def test_query_prints_the_rendered_request() -> None:
    result = CliRunner().invoke(
        cli, ["--es-url", "http://127.0.0.1:1", "query", "--metric", "cpu", "--at", "2024-01-10T00:00:00Z"]
    )
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["aggs"]["m0"]["filter"] == {"term": {"metric": "cpu"}}
    assert body["query"]["bool"]["filter"][0]["range"]["@timestamp"]["lt"] == "2024-01-10T00:00:00Z"
    assert result.stderr.startswith("# GET atlas-metrics/_search?filter_path=aggregations.*.percentiles.values")
    # printed in the order it is sent (Elasticsearch runs a bucket's pipeline aggregations in it): the trim last
    assert list(body["aggs"]["m0"]["aggs"]["series"]["aggs"]["hours"]["aggs"]) == ["x", "surprise", "window_only"]
    assert list(body["aggs"]["m0"]["aggs"]) == ["series", "percentiles", "scored"]  # not sorted


def test_query_without_metrics_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["query", "--at", "2024-01-10T00:00:00Z"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --metric: name at least one metric")


def test_query_for_a_server_before_7_4_prints_the_two_step_form() -> None:
    """6.x's moving_fn has no `shift`: pasted there, the one-step form fails with "unknown field [shift]"."""
    args = ["--es-url", "http://127.0.0.1:1", "query", "--metric", "cpu", "--at", "2024-01-10T00:00:00Z"]
    # OpenSearch 1.x and 2.x speak Elasticsearch 7.10's API: the one-step form, never 1.x's or 2.x's
    versions = [("6.8.23", False), ("7.3", False), ("7.4", True), ("8.19.9", True)]
    for version, fused in [*versions, ("opensearch-2.19.6", True), ("opensearch-1.3", True)]:
        result = CliRunner().invoke(cli, [*args, "--server-version", version])
        assert result.exit_code == 0, result.stderr
        hours = json.loads(result.stdout)["aggs"]["m0"]["aggs"]["series"]["aggs"]["hours"]["aggs"]
        assert ("shift" in json.dumps(hours), "baseline" in hours) == (fused, not fused), version
    assert json.loads(CliRunner().invoke(cli, args).stdout) == json.loads(
        CliRunner().invoke(cli, [*args, "--server-version", "7.10.2"]).stdout
    )


def test_query_names_the_fixed_interval_as_the_server_version_does() -> None:
    """`fixed_interval` came with 7.2; 6.x's date_histogram refuses it ("unknown field") and takes `interval`."""
    args = ["--es-url", "http://127.0.0.1:1", "query", "--metric", "cpu", "--at", "2024-01-10T00:00:00Z"]
    for version, key in [
        ("6.8.23", "interval"),
        ("7.1", "interval"),
        ("7.2", "fixed_interval"),
        ("8.19.9", "fixed_interval"),
    ]:
        result = CliRunner().invoke(cli, [*args, "--server-version", version])
        assert result.exit_code == 0, result.stderr
        histogram = json.loads(result.stdout)["aggs"]["m0"]["aggs"]["series"]["aggs"]["hours"]["date_histogram"]
        assert histogram[key] == "1h" and len({"interval", "fixed_interval"} & set(histogram)) == 1, version


def test_watch_render_writes_the_watch_for_the_server_version(tmp_path: Path) -> None:
    for version, key in [("6.8.23", "interval"), ("7.10.2", "fixed_interval")]:
        out = tmp_path / version
        result = CliRunner().invoke(cli, ["watch", "render", "--out", str(out), "--server-version", version])
        assert result.exit_code == 0, result.stderr
        watch = json.loads((out / "atlas-default.json").read_text())
        histogram = watch["input"]["search"]["request"]["body"]["aggs"]["metrics"]["aggs"]["points_p90"]
        assert histogram["date_histogram"][key] == "1h", version
    default = CliRunner().invoke(cli, ["watch", "render", "--out", str(tmp_path / "default")])
    assert default.exit_code == 0, default.stderr
    assert (tmp_path / "default" / "atlas-default.json").read_text() == (
        tmp_path / "7.10.2" / "atlas-default.json"
    ).read_text()
    bad = CliRunner().invoke(cli, ["watch", "render", "--out", str(tmp_path / "bad"), "--server-version", "seven"])
    assert (bad.exit_code, bad.stderr) == (
        2,
        "Error: --server-version: 'seven' is not a version like 6.8, 7.10.2 or opensearch-2.19.6\n",
    )
    assert not (tmp_path / "bad").exists()


def test_query_with_a_bad_server_version_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["query", "--metric", "cpu", "--server-version", "seven"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --server-version: 'seven' is not a version like 6.8, 7.10.2 or opensearch-2.19.6\n"
    )


def test_query_with_a_scale_window_prints_the_std_over_its_own_window(tmp_path: Path) -> None:
    """surprise.scale_window 288 beside a baseline of 24 five-minute buckets: the std's moving_fn takes 288 buckets,
    on 7.10 too, and the query (mode last) starts 288 buckets before the bucket it scores."""
    config = tmp_path / "atlas.yml"
    config.write_text(
        "surprise:\n  interval: 5m\n  step: 5m\n  window: 1h\n  normalization: zscore\n  scale_window: 288\n"
    )
    args = ["--config", str(config), "--es-url", "http://127.0.0.1:1", "query", "--metric", "cpu"]
    result = CliRunner().invoke(cli, [*args, "--at", "2024-01-10T00:00:00Z", "--server-version", "7.10.2"])
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    hours = body["aggs"]["m0"]["aggs"]["series"]["aggs"]["hours"]["aggs"]
    assert (hours["baseline"]["moving_fn"]["window"], hours["baseline_std"]["moving_fn"]["window"]) == (24, 288)
    assert body["query"]["bool"]["filter"][0]["range"]["@timestamp"]["gte"] == "2024-01-08T23:55:00Z"


def test_a_changed_template_changes_the_printed_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """queries/ is the request: a formula edited in parts.j2 is what `atlas query` prints, nothing added after."""
    queries = tmp_path / "queries"
    shutil.copytree(template_dirs()[0], queries)
    parts = queries / "parts.j2"
    relative = "return Math.abs(x - b) / Math.abs(b);"
    assert relative in parts.read_text()
    parts.write_text(parts.read_text().replace(relative, "return (x - b) / Math.abs(b);"))
    monkeypatch.setattr("atlas.templating.template_dirs", lambda: [queries])
    environment.cache_clear()
    try:
        args = ["--es-url", "http://127.0.0.1:1", "query", "--metric", "cpu", "--at", "2024-01-10T00:00:00Z"]
        result = CliRunner().invoke(cli, args)
    finally:
        environment.cache_clear()
    assert result.exit_code == 0, result.stderr
    hours = json.loads(result.stdout)["aggs"]["m0"]["aggs"]["series"]["aggs"]["hours"]["aggs"]
    assert hours["surprise"]["moving_fn"]["script"].endswith("return (x - b) / Math.abs(b);")

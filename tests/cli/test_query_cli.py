"""`atlas query` prints the request for one window without any network; it needs to know the metrics."""

from __future__ import annotations

import json

from click.testing import CliRunner

from atlas.cli import cli


def test_query_prints_the_rendered_request() -> None:
    result = CliRunner().invoke(
        cli, ["--es-url", "http://127.0.0.1:1", "query", "--metric", "cpu", "--at", "2024-01-10T00:00:00Z"]
    )
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["aggs"]["m0"]["filter"] == {"term": {"metric": "cpu"}}
    assert body["query"]["bool"]["filter"][0]["range"]["@timestamp"]["lt"] == "2024-01-10T00:00:00Z"
    assert result.stderr.startswith("# GET atlas-metrics/_search?filter_path=aggregations.*.percentiles.values")


def test_query_without_metrics_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["query", "--at", "2024-01-10T00:00:00Z"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --metric: name at least one metric")

"""`atlas setup` on the real node: strict explicit mappings, templates, idempotent."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from elasticsearch import Elasticsearch

from atlas import es_client
from atlas.cli import cli
from atlas.clock import format_instant
from atlas.errors import DataError
from atlas.ingest import load
from atlas.settings import load_settings
from atlas.surprise import resolve_metrics

pytestmark = pytest.mark.integration


def write_config(tmp_path: Path, es_url: str, prefix: str, percentiles: str = "[90, 99.9]") -> Path:
    path = tmp_path / "atlas.yml"
    path.write_text(f"es:\n  urls: [{es_url}]\nresults:\n  prefix: {prefix}\nsurprise:\n  percentiles: {percentiles}\n")
    return path


def test_setup_twice_creates_then_updates(es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, es_url, index_name)
    runner = CliRunner()
    first = runner.invoke(cli, ["--config", str(config), "setup"])
    assert first.exit_code == 0, first.output
    names = [f"{index_name}-surprise", f"{index_name}-anomalies", f"{index_name}-state"]
    assert json.loads(first.output) == {"indices": dict.fromkeys(names, "created")}
    second = runner.invoke(cli, ["--config", str(config), "setup"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.output) == {"indices": dict.fromkeys(names, "updated")}

    surprise = es.indices.get_mapping(index=names[0])[names[0]]["mappings"]
    assert surprise["dynamic"] == "strict"
    props = surprise["properties"]
    assert props["p90"] == {"type": "double"} and props["p99_9"] == {"type": "double"}
    assert props["metric"] == {"type": "keyword"} and props["window_end"] == {"type": "date"}
    assert props["top_series"]["properties"]["series"] == {"type": "keyword"}
    templates = es.indices.get_index_template(name=names[0])["index_templates"]
    assert templates[0]["index_template"]["index_patterns"] == [names[0]]


def test_setup_adds_fields_for_new_percentiles(es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path) -> None:
    runner = CliRunner()
    assert (
        runner.invoke(cli, ["--config", str(write_config(tmp_path, es_url, index_name, "[90]")), "setup"]).exit_code
        == 0
    )
    again = runner.invoke(cli, ["--config", str(write_config(tmp_path, es_url, index_name, "[90, 99]")), "setup"])
    assert again.exit_code == 0, again.output
    props = es.indices.get_mapping(index=f"{index_name}-surprise")[f"{index_name}-surprise"]["mappings"]["properties"]
    assert "p99" in props


def test_strict_mapping_rejects_unknown_fields(es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path) -> None:
    assert (
        CliRunner().invoke(cli, ["--config", str(write_config(tmp_path, es_url, index_name)), "setup"]).exit_code == 0
    )
    from elasticsearch import RequestError

    with pytest.raises(RequestError, match="strict_dynamic_mapping_exception"):
        es.index(index=f"{index_name}-anomalies", body={"metric": "m", "surprise_typo": 1.0})


def test_setup_against_unreachable_cluster_exits_1(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9", "atlas-test-unreachable")
    result = CliRunner().invoke(cli, ["--config", str(config), "setup"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: checking index atlas-test-unreachable-surprise: cannot reach Elasticsearch at http://127.0.0.1:9"
        " (connection refused, tried 4 times)"
    ]


@pytest.mark.parametrize(
    "command", [["run", "--at", "2024-01-03T00:00:00Z"], ["backfill", "--from", "2024-01-02", "--to", "2024-01-03"]]
)
def test_the_job_before_setup_refuses_and_creates_nothing(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path, command: list[str]
) -> None:
    result = CliRunner().invoke(cli, ["--config", str(write_config(tmp_path, es_url, index_name)), *command])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: result index {index_name}-surprise does not exist: run `atlas setup` first"
    ]
    for kind in ("surprise", "anomalies", "state"):
        assert not es.indices.exists(index=f"{index_name}-{kind}")


def test_setup_names_a_field_that_dynamic_mapping_typed_otherwise(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    # What Elasticsearch makes of a surprise document written before setup: metric becomes text, p90 a float.
    es.index(index=f"{index_name}-surprise", body={"metric": "cpu", "p90": 1.5}, refresh=True)
    config = str(write_config(tmp_path, es_url, index_name))
    expected = (
        f"Error: result index {index_name}-surprise maps metric: found text, atlas maps keyword"
        " (and 1 more field(s)); a field's type cannot change: delete the index (`atlas backfill` recomputes its"
        " results) or set another results.prefix, then run `atlas setup`"
    )
    for command in (["setup"], ["run", "--at", "2024-01-03T00:00:00Z"]):
        result = CliRunner().invoke(cli, ["--config", config, *command])
        assert result.exit_code == 2, command
        assert result.stderr.strip().splitlines() == [expected], command
    assert not es.indices.exists(index=f"{index_name}-anomalies")  # setup changed nothing

    es.indices.delete(index=f"{index_name}-surprise")
    assert CliRunner().invoke(cli, ["--config", config, "setup"]).exit_code == 0


def test_run_after_a_new_percentile_without_setup_asks_for_setup(es_url: str, index_name: str, tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["--config", str(write_config(tmp_path, es_url, index_name, "[90]")), "setup"])
    config = str(write_config(tmp_path, es_url, index_name, "[90, 99]"))
    result = CliRunner().invoke(cli, ["--config", config, "run", "--at", "2024-01-03T00:00:00Z"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"Error: result index {index_name}-surprise lacks the field p99: run `atlas setup` first"
    )


def simulated_source(es_url: str, index_name: str, tmp_path: Path) -> tuple[Path, str]:
    """An atlas.yml (and its text) whose source index holds one simulated metric of 2 queries over 30 hours."""
    config = tmp_path / "atlas.yml"
    base = f"es:\n  urls: [{es_url}]\nresults:\n  prefix: {index_name}\nsource:\n  index: {index_name}-metrics\n"
    config.write_text(base)
    simulate = ["simulate", "--scenario", "none", "--metrics", "1", "--queries", "2", "--nodes", "1", "--hours", "30"]
    for command in (["setup"], simulate):
        assert CliRunner().invoke(cli, ["--config", str(config), *command]).exit_code == 0
    return config, base


@pytest.mark.parametrize(
    ("key", "value"),
    [("series_fields", "[hostname]"), ("value_field", "val"), ("metric_field", "name"), ("time_field", "ts")],
)
def test_a_source_field_no_document_has_is_named(
    es_url: str, index_name: str, tmp_path: Path, key: str, value: str
) -> None:
    config, base = simulated_source(es_url, index_name, tmp_path)
    config.write_text(base + f"  {key}: {value}\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "run", "--at", "2024-01-02T06:00:00Z"])
    assert result.exit_code == 2
    field = value.strip("[]")
    assert result.stderr.strip() == (
        f"Error: no document of {index_name}-metrics has the field {field!r}: check source.* in the configuration"
    )


def test_a_configured_metric_no_document_has_is_named(es_url: str, index_name: str, tmp_path: Path) -> None:
    config, base = simulated_source(es_url, index_name, tmp_path)
    for metrics, code in (("[metric_0]", 0), ("[metric_0, metirc_1]", 2)):
        config.write_text(base + f"  metrics: {metrics}\n")
        for command in (
            ["run", "--at", "2024-01-02T06:00:00Z"],
            ["backfill", "--from", "2024-01-02T05:00:00Z", "--to", "2024-01-02T06:00:00Z"],
        ):
            result = CliRunner().invoke(cli, ["--config", str(config), *command])
            assert result.exit_code == code, (metrics, command, result.stderr)
            if code:
                assert result.stderr.strip() == (
                    f"Error: source.metrics: no document of {index_name}-metrics has the metric 'metirc_1'"
                )


def test_an_empty_source_is_named(es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path) -> None:
    config = tmp_path / "atlas.yml"
    config.write_text(f"es:\n  urls: [{es_url}]\nresults:\n  prefix: {index_name}\nsource:\n  index: {index_name}-m\n")
    es.indices.create(index=f"{index_name}-m")
    assert CliRunner().invoke(cli, ["--config", str(config), "setup"]).exit_code == 0
    result = CliRunner().invoke(cli, ["--config", str(config), "run"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: no documents in {index_name}-m (source.index); index data first"


def test_a_run_resolves_the_metrics_of_what_its_windows_read(es_url: str, index_name: str) -> None:
    """A job every 5 minutes asks for the metrics with documents in the range its windows read, not in the whole
    index; with none there, every metric of the index (and none at all is an error)."""
    settings = load_settings(None, {"es.urls": [es_url], "source.index": f"{index_name}-m"})
    client = es_client.connect(settings.es)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    hours = {"early": range(0, 10), "late": range(20, 30)}
    docs = [
        {"@timestamp": format_instant(start + timedelta(hours=h)), "metric": metric, "query": "q", "value": 1.0}
        for metric, span in hours.items()
        for h in span
    ]
    load.load_documents(client, settings.source, f"{index_name}-m", docs)
    at = functools.partial(resolve_metrics, client, settings)
    assert at((start + timedelta(hours=25), start + timedelta(hours=26))) == ["late"]
    assert at((start + timedelta(hours=5), start + timedelta(hours=25))) == ["early", "late"]
    assert at((start + timedelta(hours=40), start + timedelta(hours=41))) == ["early", "late"]
    assert at(None) == ["early", "late"]
    empty = load_settings(None, {"es.urls": [es_url], "source.index": f"{index_name}-empty"})
    es_client.create_index(client, f"{index_name}-empty", {})
    with pytest.raises(DataError, match="no metrics found"):
        resolve_metrics(client, empty, (start, start + timedelta(hours=1)))

"""Elasticsearch 8.19.9's integ-test-zip (a current server without painless and the aggregations module): what
atlas does there (setup, simulate, ingest csv, result writes and reads, anomalies) and how the surprise query is
refused before any work."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from atlas import es_client, results
from atlas.cli import cli
from atlas.events import anomaly_events
from atlas.indices import result_indices
from atlas.job import threshold_windows
from atlas.records import SeriesSurprise, WindowSurprise
from atlas.settings import Settings, load_settings
from atlas.store import ElasticStore
from tests.es_nodes import running_node
from tests.surprise_series import HOURS, PERCENTILES, START, flagged_by_python, sample_series, window_ends

pytestmark = pytest.mark.integration

PORT = 9291


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with running_node("8.19.9", PORT) as (node_url, _):
        yield node_url


def write_config(tmp_path: Path, url: str, prefix: str) -> tuple[Path, Settings]:
    config = {
        "es": {"urls": [url]},
        "source": {"index": f"{prefix}-metrics"},
        "results": {"prefix": prefix},
        "surprise": {"percentiles": list(PERCENTILES)},
        # the plain rule, on which the sample series flags points (the threshold stage is what is tested here)
        "threshold": {"window": 6, "lookback": 6, "sigmas": 3.0, "levels": [3.0, 4.0, 5.0]},
    }
    path = tmp_path / "atlas.yml"
    path.write_text(yaml.safe_dump(config))
    return path, load_settings(path, {})


def atlas(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    return result.exit_code, result.stdout, result.stderr


def test_setup_simulate_and_ingest_work(url: str, tmp_path: Path) -> None:
    config, _ = write_config(tmp_path, url, "atlas-v8-data")
    code, out, err = atlas(config, "setup")
    assert code == 0, err
    assert set(json.loads(out)["indices"]) == {
        "atlas-v8-data-surprise",
        "atlas-v8-data-anomalies",
        "atlas-v8-data-state",
    }
    assert atlas(config, "setup")[0] == 0  # idempotent

    code, out, err = atlas(config, "simulate", "--metrics", "2", "--queries", "5", "--nodes", "2", "--hours", "30")
    assert code == 0, err
    assert json.loads(out)["indexed"] == 2 * 5 * 2 * 30

    rows = ["timestamp,metric,series,value", "2024-03-01T00:00:00Z,disk,h1,0.5", "1709254800,disk,h2,0.75"]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    code, out, err = atlas(config, "ingest", "csv", str(tmp_path / "m.csv"), "--index", "atlas-v8-data-csv")
    assert code == 0, err
    assert json.loads(out)["indexed"] == 2


def surprise_records() -> list[WindowSurprise]:
    """The hand-built percentile series as the surprise stage would have written them."""
    values = sample_series()
    records = []
    for metric in ("cpu", "mem"):
        for h, end in enumerate(window_ends()):
            percentiles = {p: values[(metric, p)][h] for p in PERCENTILES}
            records.append(
                WindowSurprise(
                    metric=metric,
                    window_start=end.to_pydatetime() - timedelta(hours=24),
                    window_end=end.to_pydatetime(),
                    percentiles={p: None if math.isnan(v) else float(v) for p, v in percentiles.items()},
                    series_count=10,
                    top_series=(SeriesSurprise(f"q{h % 7}", 1.5 * h),),
                )
            )
    return records


def test_results_are_written_read_and_listed(url: str, tmp_path: Path) -> None:
    config, settings = write_config(tmp_path, url, "atlas-v8-results")
    assert atlas(config, "setup")[0] == 0
    client = es_client.connect(settings.es)
    assert client.version == (8, 19)
    written = surprise_records()
    assert results.write_surprise(client, settings, written) == len(written)
    first, last = START, START + timedelta(hours=HOURS - 1)
    assert results.read_surprise(client, settings, first, last) == sorted(
        written, key=lambda r: (r.window_end, r.metric)
    )

    found = threshold_windows(settings, ElasticStore(client, settings), ["cpu", "mem"], first, last)
    flagged = {(a.window_end, a.metric, a.percentile) for a in found}
    expected = {
        (t, m, p) for t, keys in flagged_by_python(sample_series(), settings.threshold).items() for m, p in keys
    }
    assert flagged == expected and flagged
    assert results.write_anomalies(client, settings, found) == len(found)
    assert results.read_anomalies(client, settings, first, last) == sorted(
        found, key=lambda a: (a.window_end, a.metric, a.percentile)
    )

    code, out, err = atlas(
        config, "anomalies", "--from", first.isoformat(), "--to", last.isoformat(), "--format", "json"
    )
    assert code == 0, err
    listed = json.loads(out)
    events = anomaly_events(sorted(found, key=lambda a: (a.window_end, a.metric, a.percentile)), timedelta(hours=1))
    assert [(e["metric"], e["percentile"], e["start"]) for e in listed] == [
        (e.metric, e.percentile, e.start.isoformat().replace("+00:00", "Z")) for e in events
    ]


def test_run_names_the_missing_modules_before_any_work(url: str, tmp_path: Path) -> None:
    config, settings = write_config(tmp_path, url, "atlas-v8-run")
    assert atlas(config, "setup")[0] == 0
    assert atlas(config, "simulate", "--metrics", "1", "--queries", "3", "--nodes", "1", "--hours", "60")[0] == 0
    for command in (
        ["run", "--at", "2024-01-03T12:00:00Z"],
        ["backfill", "--from", "2024-01-02", "--to", "2024-01-03"],
    ):
        code, out, err = atlas(config, *command)
        assert code == 1
        assert out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("Error: the cluster at http://127.0.0.1:9291 lacks the Elasticsearch module(s) ")
        assert "lang-painless, aggregations" in lines[0]
    client = es_client.connect(settings.es)
    names = result_indices(settings.results)
    assert es_client.get_document(client, names.state, settings.results.job) is None  # no lease was taken
    assert es_client.search(client, names.surprise, {"size": 0})["hits"]["total"]["value"] == 0

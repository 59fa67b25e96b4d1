"""The detection job on the real node: run/backfill idempotence, replay byte for byte, a killed run redone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from elasticsearch import Elasticsearch, helpers

from atlas import es_client, job, results, simulate, state
from atlas.cli import cli
from atlas.errors import EsQueryRejected
from atlas.indices import setup_indices
from atlas.ingest import load
from atlas.settings import Settings, load_settings

pytestmark = pytest.mark.integration

START = datetime(2024, 1, 1, tzinfo=UTC)
SPEC = simulate.SimulationSpec(metrics=2, queries=12, nodes=2, hours=160, scenario="none", seed=7, start=START)


# The blog's plain threshold rule: on this scenario's noise it flags points, which these tests need to list and score.
BLOG_THRESHOLD = {"window": 6, "lookback": 6, "sigmas": 3.0, "levels": [3.0, 4.0, 5.0]}


def settings_for(es_url: str, source_index: str, prefix: str) -> Settings:
    overrides = {
        "es.urls": [es_url],
        "source.index": source_index,
        "results.prefix": prefix,
        "surprise.percentiles": [90, 99],
        "surprise.mode": "last",
        **{f"threshold.{key}": value for key, value in BLOG_THRESHOLD.items()},
    }
    return load_settings(None, overrides)


def write_config(path: Path, es_url: str, source_index: str, prefix: str) -> Path:
    """The same settings as settings_for, as the atlas.yml the CLI reads."""
    config = {
        "es": {"urls": [es_url]},
        "source": {"index": source_index},
        "results": {"prefix": prefix},
        "surprise": {"percentiles": [90, 99], "mode": "last"},
        "threshold": BLOG_THRESHOLD,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def source_index(es: Elasticsearch, es_url: str, index_name: str) -> str:
    index = f"{index_name}-source"
    settings = settings_for(es_url, index, index_name)
    load.load_documents(
        es_client.connect(settings.es),
        settings.source,
        index,
        simulate.simulate_documents(SPEC),
        extra_keywords=["node"],
    )
    return index


def documents(es: Elasticsearch, index: str) -> dict[str, str]:
    """Every document of an index as id -> its source's exact JSON text (key order as stored)."""
    es.indices.refresh(index=index)
    return {hit["_id"]: json.dumps(hit["_source"]) for hit in helpers.scan(es, index=index, size=5000)}


def prepared(es_url: str, source_index: str, prefix: str) -> Settings:
    settings = settings_for(es_url, source_index, prefix)
    setup_indices(es_client.connect(settings.es), settings)
    return settings


def backfilled_a_and_partly_b(
    es_url: str, source_index: str, index_name: str, until_hour: int
) -> tuple[Settings, es_client.EsClient]:
    """Job a backfilled over hours 50-150, job b over 50-`until_hour`: b's settings, to carry on, and a client."""
    whole = prepared(es_url, source_index, f"{index_name}-a")
    partial = prepared(es_url, source_index, f"{index_name}-b")
    client = es_client.connect(whole.es)
    job.backfill(whole, client, START + timedelta(hours=50), START + timedelta(hours=150))
    job.backfill(partial, client, START + timedelta(hours=50), START + timedelta(hours=until_hour))
    return partial, client


def assert_b_equals_a(es: Elasticsearch, index_name: str) -> None:
    for kind in ("surprise", "anomalies"):
        assert documents(es, f"{index_name}-b-{kind}") == documents(es, f"{index_name}-a-{kind}"), kind


def test_run_twice_writes_nothing_new_the_second_time(
    es: Elasticsearch, es_url: str, source_index: str, index_name: str
) -> None:
    settings = prepared(es_url, source_index, index_name)
    client = es_client.connect(settings.es)
    at = START + timedelta(hours=100, minutes=10)
    job.backfill(settings, client, START + timedelta(hours=60), START + timedelta(hours=96))
    first = job.run_once(settings, client, at)
    before = documents(es, f"{index_name}-surprise")
    second = job.run_once(settings, client, at)
    assert [t.hour for t in first.windows] == [1, 2, 3, 4]  # hours 97..100 after the backfill's last window, 96
    assert (second.windows, second.surprise_documents) == ((), 0)
    assert documents(es, f"{index_name}-surprise") == before


def test_run_at_a_past_hour_reproduces_the_backfilled_documents(
    es: Elasticsearch, es_url: str, source_index: str, index_name: str
) -> None:
    stepwise, client = backfilled_a_and_partly_b(es_url, source_index, index_name, until_hour=119)
    for hour in range(120, 151):
        job.run_once(stepwise, client, START + timedelta(hours=hour, minutes=30))
    assert_b_equals_a(es, index_name)
    assert len(documents(es, f"{index_name}-a-surprise")) == 101 * 2


def test_one_run_after_72_hours_of_downtime_catches_up_like_a_backfill(
    es: Elasticsearch, es_url: str, source_index: str, index_name: str
) -> None:
    resumed, client = backfilled_a_and_partly_b(es_url, source_index, index_name, until_hour=78)
    before = {kind: documents(es, f"{index_name}-b-{kind}") for kind in ("surprise", "anomalies")}
    # A dry run over the same 3 chunks writes nothing, yet thresholds each chunk after the ones before it.
    dry = job.run_once(resumed, client, START + timedelta(hours=150, minutes=30), dry_run=True)
    assert {kind: documents(es, f"{index_name}-b-{kind}") for kind in before} == before
    caught_up = job.run_once(resumed, client, START + timedelta(hours=150, minutes=30))  # cron down for 72 h
    assert len(caught_up.windows) == 72
    assert caught_up.windows[0] == START + timedelta(hours=79)
    assert_b_equals_a(es, index_name)
    assert (dry.windows, dry.surprise_documents, caught_up.surprise_documents) == (caught_up.windows, 0, 144)
    assert caught_up.anomalies and (dry.anomalies, dry.events) == (caught_up.anomalies, caught_up.events)


def test_a_killed_backfill_run_again_leaves_what_one_clean_run_leaves(
    es: Elasticsearch, es_url: str, source_index: str, index_name: str, tmp_path: Path
) -> None:
    clean = prepared(es_url, source_index, f"{index_name}-clean")
    killed = prepared(es_url, source_index, f"{index_name}-killed")
    client = es_client.connect(clean.es)
    first, last = START + timedelta(hours=48), START + timedelta(hours=159)
    job.backfill(clean, client, first, last)
    config = tmp_path / "atlas.yml"
    config.write_text(
        f"es:\n  urls: [{es_url}]\nsource:\n  index: {source_index}\nresults:\n  prefix: {index_name}-killed\n"
        "surprise:\n  percentiles: [90, 99]\n  mode: last\n"
    )
    args = [
        sys.executable,
        "-m",
        "atlas",
        "--config",
        str(config),
        "backfill",
        "--from",
        first.isoformat(),
        "--to",
        last.isoformat(),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:  # kill it once it has recorded its first chunk
        state = es.get(index=f"{index_name}-killed-state", id="default", ignore=404)
        if state.get("found") and state["_source"].get("last_window_end"):
            break
        time.sleep(0.01)  # a chunk takes a few tens of milliseconds once the scan is done
    assert proc.poll() is None, "the backfill ended before it could be killed; make it longer"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    held = es.get(index=f"{index_name}-killed-state", id="default")["_source"]
    assert held["lease_owner"] and held["last_window_end"] < last.strftime("%Y-%m-%dT%H:%M:%SZ")
    job.backfill(killed, client, first, last)  # takes over the dead process's lease
    for kind in ("surprise", "anomalies"):
        assert documents(es, f"{index_name}-killed-{kind}") == documents(es, f"{index_name}-clean-{kind}"), kind


def test_a_second_run_while_one_holds_the_lease_is_refused(es_url: str, source_index: str, index_name: str) -> None:
    settings = prepared(es_url, source_index, index_name)
    client = es_client.connect(settings.es)
    now = datetime.now(UTC)
    held = state.acquire_lease(client, settings, now, state.current_owner())  # this live process holds it
    with pytest.raises(state.LeaseHeld, match="job default is being run by"):
        job.run_once(settings, client, START + timedelta(hours=100))
    state.release_lease(client, settings, held, now)
    assert job.run_once(settings, client, START + timedelta(hours=100)).windows


def test_too_many_buckets_is_one_clear_error(
    es: Elasticsearch, es_url: str, source_index: str, index_name: str
) -> None:
    settings = prepared(es_url, source_index, index_name)
    # Series are split until each request fits; only a limit one series alone exceeds is refused.
    es.cluster.put_settings(body={"transient": {"search.max_buckets": 20}})
    try:
        with pytest.raises(EsQueryRejected, match=r"needs more buckets than the cluster's search.max_buckets allows"):
            job.run_once(settings, es_client.connect(settings.es), START + timedelta(hours=100))
    finally:
        es.cluster.put_settings(body={"transient": {"search.max_buckets": None}})


def test_anomalies_command_lists_events_as_table_json_and_csv(
    es_url: str, source_index: str, index_name: str, tmp_path: Path
) -> None:
    settings = prepared(es_url, source_index, index_name)
    job.backfill(settings, es_client.connect(settings.es), START + timedelta(hours=48), START + timedelta(hours=159))
    config = write_config(tmp_path / "atlas.yml", es_url, source_index, index_name)
    window = ["--from", "2024-01-01T00:00:00Z", "--to", "2024-01-08T00:00:00Z"]
    runner = CliRunner()
    as_json = runner.invoke(cli, ["--config", str(config), "anomalies", *window, "--format", "json"])
    rows = json.loads(as_json.stdout)
    assert as_json.exit_code == 0 and rows, as_json.stderr
    columns = ["start", "end", "metric", "percentile", "points", "severity", "score", "actual", "typical"]
    columns += ["threshold", "influencers"]
    assert set(rows[0]) == set(columns) and 0 <= rows[0]["score"] <= 100 and rows[0]["actual"] > rows[0]["threshold"]
    assert rows[0]["influencers"] and {i["field"] for i in rows[0]["influencers"]} == {"series"}
    as_csv = runner.invoke(cli, ["--config", str(config), "anomalies", *window, "--format", "csv"]).stdout.splitlines()
    assert as_csv[0] == ",".join(columns)
    assert len(as_csv) == len(rows) + 1
    table = runner.invoke(cli, ["--config", str(config), "anomalies", *window]).stdout.splitlines()
    assert table[0].split() == columns
    assert len(table) == len(rows) + 1
    grouped = runner.invoke(cli, ["--config", str(config), "anomalies", *window, "--grouped", "--format", "json"])
    groups = json.loads(grouped.stdout)
    assert (
        grouped.exit_code == 0
        and groups
        and set(groups[0]) == {"start", "end", "group", "criticality", "score", "metrics", "influencers"}
    )
    assert sum(len(g["metrics"]) for g in groups) >= len({(r["metric"], r["percentile"], r["start"]) for r in rows})
    bad = runner.invoke(cli, ["--config", str(config), "anomalies", *window, "--group-by", "node"])
    assert bad.exit_code == 2 and "--group-by: 'node' is not one of source.series_fields" in bad.stderr


def test_dry_run_writes_nothing_and_evaluate_scores_the_stored_anomalies(
    es: Elasticsearch, es_url: str, source_index: str, index_name: str, tmp_path: Path
) -> None:
    settings = prepared(es_url, source_index, index_name)
    client = es_client.connect(settings.es)
    dry = job.run_once(settings, client, START + timedelta(hours=100), dry_run=True)
    assert dry.windows and dry.dry_run and es.count(index=f"{index_name}-surprise")["count"] == 0
    assert not es.exists(index=f"{index_name}-state", id="default")
    job.backfill(settings, client, START + timedelta(hours=48), START + timedelta(hours=159))
    truth = tmp_path / "truth.csv"
    truth.write_text("start,end,metric\n2024-01-04T00:00:00Z,2024-01-04T06:00:00Z,\n")
    config = write_config(tmp_path / "atlas.yml", es_url, source_index, index_name)
    result = CliRunner().invoke(cli, ["--config", str(config), "evaluate", "--truth", str(truth), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    scores = json.loads(result.stdout)
    assert set(scores) == {"all", "high", "grouped", "grouped_medium", "grouped_high"}
    line = scores["all"]
    assert line["events_found"] + line["events_missed"] == 2  # one interval, labelling both metrics
    assert line["tp"] + line["fn"] >= 1 and 0.0 <= line["f1"] <= 1.0


def test_hourly_runs_name_the_top_series_of_their_anomalies_and_no_others(
    es: Elasticsearch, es_url: str, source_index: str, index_name: str
) -> None:
    """The hourly request answers percentiles only; a flagged window gets its top series afterwards, in the anomaly
    and in the window's surprise document, the same as a backfill's."""
    stepwise, client = backfilled_a_and_partly_b(es_url, source_index, index_name, until_hour=60)
    for hour in range(61, 151):
        job.run_once(stepwise, client, START + timedelta(hours=hour, minutes=30))
    first, last = START + timedelta(hours=61), START + timedelta(hours=150)
    anomalies = results.read_anomalies(client, stepwise, first, last)
    assert anomalies and all(a.top_series for a in anomalies)
    flagged = {(a.metric, a.window_end) for a in anomalies}
    named = {(r.metric, r.window_end) for r in results.read_surprise(client, stepwise, first, last) if r.top_series}
    assert named == flagged
    assert_b_equals_a(es, index_name)

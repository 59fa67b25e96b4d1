"""`atlas ingest rrd` on the real node with the real `rrdtool`: every known value becomes one document with the CSV
import's shape, unknown values none, and a 10 s RRD lands in the same hourly buckets as a 60 s CSV of one metric."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from elasticsearch import Elasticsearch, helpers

from atlas.cli import cli
from atlas.ingest.csv_file import MetricSample
from atlas.ingest.load import document_id

pytestmark = pytest.mark.integration

T0 = 1714557600  # 2024-05-01T10:00:00Z, on the hour
HOURS = 2


def ingest(es_url: str, kind: str, *args: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(cli, ["--es-url", es_url, "ingest", kind, *args])
    return result.exit_code, json.loads(result.stdout) if result.exit_code == 0 else {}, result.stderr


def make_rrd(path: Path, step: int, points: dict[int, float | None], rows: int) -> Path:
    """A one-gauge RRD (data source `value`) fed `points` (epoch s -> value, None = unknown) in time order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"LC_ALL": "C"}
    create = ["rrdtool", "create", str(path), "--start", str(T0 - step), "--step", str(step)]
    subprocess.run([*create, f"DS:value:GAUGE:{step * 2}:U:U", f"RRA:AVERAGE:0.5:1:{rows}"], check=True, env=env)
    updates = [f"{t}:{'U' if v is None else repr(v)}" for t, v in sorted(points.items())]
    for start in range(0, len(updates), 200):  # one rrdtool call per 200 updates, not one per update
        subprocess.run(["rrdtool", "update", str(path), *updates[start : start + 200]], check=True, env=env)
    return path


def rrd_points() -> dict[int, float | None]:
    """Every 10 s for two hours; each value is its own row's average (updates on the step); one unknown value."""
    points: dict[int, float | None] = {T0 + 10 * i: float(i % 7) + 10 * (i // 360) for i in range(360 * HOURS)}
    points[T0 + 100] = None
    return points


def hourly_averages(es: Elasticsearch, index: str) -> dict[tuple[str, int], float]:
    """(series, hour start epoch s) -> avg(value), from a 1 h date_histogram as the surprise query buckets."""
    body = {
        "size": 0,
        "aggs": {
            "series": {
                "terms": {"field": "query"},
                "aggs": {
                    "hours": {
                        "date_histogram": {"field": "@timestamp", "fixed_interval": "1h"},
                        "aggs": {"avg": {"avg": {"field": "value"}}},
                    }
                },
            }
        },
    }
    response = es.search(index=index, body=body)
    return {
        (series["key"], hour["key"] // 1000): hour["avg"]["value"]
        for series in response["aggregations"]["series"]["buckets"]
        for hour in series["hours"]["buckets"]
    }


def expected_hourly(points: dict[int, float | None]) -> dict[int, float]:
    hours: dict[int, list[float]] = {}
    for t, v in points.items():
        if v is not None:
            hours.setdefault(t - t % 3600, []).append(v)
    return {hour: sum(vs) / len(vs) for hour, vs in hours.items()}


def test_every_known_value_is_one_document(es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path) -> None:
    points = rrd_points()
    path = make_rrd(tmp_path / "web1" / "app-blue" / "latency-p90.rrd", 10, points, rows=1000)
    code, report, err = ingest(es_url, "rrd", str(path), "--index", index_name)
    assert code == 0, err
    known = {t: v for t, v in points.items() if v is not None}
    assert (report["rows"], report["indexed"], report["replaced"]) == (len(known), len(known), 0)
    assert es.count(index=index_name)["count"] == len(known)
    got = {hit["_id"]: hit["_source"] for hit in helpers.scan(es, index=index_name, size=5000)}
    for t, v in known.items():  # the CSV import's ids and document shape
        sample = MetricSample(datetime.fromtimestamp(t, UTC), "app.latency.p90", "web1/blue", v)
        assert got[document_id(sample)] == {
            "@timestamp": datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "metric": "app.latency.p90",
            "query": "web1/blue",
            "value": v,
        }

    code, report, err = ingest(es_url, "rrd", str(path), "--index", index_name)  # again: nothing gained
    assert code == 0, err
    assert (report["indexed"], report["replaced"], report["index_documents"]) == (0, len(known), len(known))


def test_a_10s_rrd_and_a_60s_csv_share_hourly_buckets(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    rrd = rrd_points()
    csv_points: dict[int, float | None] = {T0 + 60 * j: float(j % 5) + 100 * (j // 60) for j in range(60 * HOURS)}
    path = make_rrd(tmp_path / "h1" / "app" / "latency.rrd", 10, rrd, rows=1000)
    csv = tmp_path / "latency.csv"
    csv.write_text(
        "timestamp,metric,series,value\n" + "".join(f"{t},app.latency,csv1,{v}\n" for t, v in csv_points.items())
    )
    for kind, file in (("rrd", path), ("csv", csv)):
        code, _, err = ingest(es_url, kind, str(file), "--index", index_name)
        assert code == 0, err
    metrics = es.search(index=index_name, body={"size": 0, "aggs": {"m": {"terms": {"field": "metric"}}}})
    assert [b["key"] for b in metrics["aggregations"]["m"]["buckets"]] == ["app.latency"]

    got = hourly_averages(es, index_name)
    hours = [T0 + 3600 * h for h in range(HOURS)]
    assert sorted(got) == sorted((series, hour) for series in ("h1", "csv1") for hour in hours)
    for series, points in (("h1", rrd), ("csv1", csv_points)):
        for hour, average in expected_hourly(points).items():
            assert got[(series, hour)] == pytest.approx(average, rel=1e-12)


def test_a_corrupt_file_next_to_a_good_one_writes_nothing(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    good = make_rrd(tmp_path / "h1" / "app" / "latency.rrd", 10, rrd_points(), rows=1000)
    bad = tmp_path / "h2" / "app" / "latency.rrd"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(good.read_bytes()[:1000])
    code, _, err = ingest(es_url, "rrd", str(good), str(bad), "--index", index_name)
    assert (code, err.count("\n"), err.startswith(f"Error: {bad}: not a valid RRD file")) == (2, 1, True)
    assert not es.indices.exists(index=index_name)

"""Data in on the real node: `atlas simulate` and `atlas ingest csv` through the CLI."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from elasticsearch import Elasticsearch, helpers

from atlas.cli import cli

pytestmark = pytest.mark.integration

SMALL_BLOG = ["--metrics", "5", "--queries", "12", "--nodes", "1", "--hours", "600"]


def config(tmp_path: Path, es_url: str) -> Path:
    path = tmp_path / "atlas.yml"
    path.write_text(f"es:\n  urls: [{es_url}]\n")
    return path


def invoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.stdout, result.stderr


def index_digest(es: Elasticsearch, index: str) -> str:
    """A hash of every document (id and source), independent of the order Elasticsearch returns them."""
    docs = sorted(
        (hit["_id"], json.dumps(hit["_source"], sort_keys=True)) for hit in helpers.scan(es, index=index, size=5000)
    )
    return hashlib.sha256(repr(docs).encode()).hexdigest()


def test_simulate_same_seed_same_documents_and_blog_truth(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    cfg = str(config(tmp_path, es_url))
    truth = tmp_path / "truth.csv"
    code, out, err = invoke(
        ["--config", cfg, "simulate", *SMALL_BLOG, "--seed", "7", "--index", f"{index_name}-a", "--truth", str(truth)]
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["indexed"] == 5 * 12 * 1 * 600 == report["index_documents"]
    assert report["series_per_metric"] == {f"metric_{m}": 12 for m in range(5)}
    assert report["first"] == "2024-01-01T00:00:00.000Z" and report["last"] == "2024-01-25T23:00:00.000Z"
    assert report["docs_per_second"] > 0

    code, _, err = invoke(["--config", cfg, "simulate", *SMALL_BLOG, "--seed", "7", "--index", f"{index_name}-b"])
    assert code == 0, err
    code, _, err = invoke(["--config", cfg, "simulate", *SMALL_BLOG, "--seed", "8", "--index", f"{index_name}-c"])
    assert code == 0, err
    digests = {name: index_digest(es, f"{index_name}-{name}") for name in "abc"}
    assert digests["a"] == digests["b"]
    assert digests["a"] != digests["c"]

    rows = list(csv.DictReader(truth.open()))
    intervals = {(r["start"], r["end"], r["metric"]) for r in rows}
    hour = lambda h: f"2024-01-{1 + h // 24:02d}T{h % 24:02d}:00:00Z"  # noqa: E731
    expected = {
        *((hour(505), hour(522), f"metric_{m}") for m in (0, 3, 4)),
        *((hour(145), hour(152), f"metric_{m}") for m in (3, 4)),
        (hour(279), hour(299), ""),
        (hour(240), hour(244), "metric_1"),
        (hour(352), hour(356), ""),
        *((hour(172), hour(182), f"metric_{m}") for m in (0, 2)),
        (hour(334), hour(338), ""),
        (hour(272), hour(276), ""),
    }
    assert intervals == expected
    assert len(rows) == 12


def test_simulated_mapping_is_explicit(es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path) -> None:
    args = ["--config", str(config(tmp_path, es_url)), "simulate", "--metrics", "1", "--queries", "2", "--nodes", "2"]
    code, _, err = invoke([*args, "--hours", "3", "--index", index_name])
    assert code == 0, err
    props = es.indices.get_mapping(index=index_name)[index_name]["mappings"]["properties"]
    assert {k: v["type"] for k, v in props.items()} == {
        "@timestamp": "date",
        "metric": "keyword",
        "query": "keyword",
        "node": "keyword",
        "value": "double",
    }


GOOD_CSV = (
    "timestamp,metric,series,value\n"
    "2024-05-01T10:00:00Z,cpu,host-a,0.5\n"
    "1714557600,cpu,host-b,0.75\n"
    "2024-05-01T11:00:00Z,mem,host-a,12\n"
)
BAD_CSV = "timestamp,metric,series,value\n2024-05-01T10:00:00Z,cpu,host-a,0.5\n2024-05-01T11:00:00Z,cpu,host-a,abc\n"


def test_ingest_good_csv(es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(GOOD_CSV)
    code, out, err = invoke(
        ["--config", str(config(tmp_path, es_url)), "ingest", "csv", str(good), "--index", index_name]
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["indexed"] == 3 == report["index_documents"]
    assert report["series_per_metric"] == {"cpu": 2, "mem": 1}
    # The id is the sha256 of the JSON array [metric, series, epoch milliseconds].
    doc_id = hashlib.sha256(b'["cpu","host-b",1714557600000]').hexdigest()
    hit = es.get(index=index_name, id=doc_id)["_source"]
    assert hit == {"@timestamp": "2024-05-01T10:00:00Z", "metric": "cpu", "query": "host-b", "value": 0.75}
    # Importing again rewrites the same documents.
    assert (
        invoke(["--config", str(config(tmp_path, es_url)), "ingest", "csv", str(good), "--index", index_name])[0] == 0
    )
    assert es.count(index=index_name)["count"] == 3


def test_ingest_bad_csv_writes_nothing(es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(GOOD_CSV)
    bad.write_text(BAD_CSV)
    cfg = str(config(tmp_path, es_url))
    code, out, err = invoke(["--config", cfg, "ingest", "csv", str(good), str(bad), "--index", index_name])
    assert code == 2
    assert out == ""
    assert err.strip() == f"Error: {bad}:3: value 'abc' is not a number"
    assert not es.indices.exists(index=index_name)

    code, out, err = invoke(
        ["--config", cfg, "ingest", "csv", str(good), str(bad), "--skip-bad", "--index", index_name]
    )
    assert code == 0, err
    report = json.loads(out)
    # bad.csv's good row repeats good.csv's first: sent twice, one document.
    assert (report["rows"], report["indexed"], report["replaced"], report["skipped"]) == (4, 3, 1, 1)
    assert report["index_documents"] == 3 == es.count(index=index_name)["count"]
    assert f"skipped {bad}:3: value 'abc' is not a number" in err

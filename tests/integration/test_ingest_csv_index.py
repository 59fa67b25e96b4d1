"""`atlas ingest csv` on the real node: the summary counts what the index gained, ids keep rows apart, the last of
repeated rows wins, the years 1000 to 9999 are written, bad input writes nothing, memory stays bounded."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from elasticsearch import Elasticsearch, helpers

from atlas.cli import cli
from tests.memory import run_measured

pytestmark = pytest.mark.integration

HEADER = "timestamp,metric,series,value\n"
RSS_LIMIT_MB = 200


def ingest(es_url: str, *args: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(cli, ["--es-url", es_url, "ingest", "csv", *args])
    return result.exit_code, json.loads(result.stdout) if result.exit_code == 0 else {}, result.stderr


def write(tmp_path: Path, rows: list[str], name: str = "m.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(f"{row}\n" for row in rows), encoding="utf-8")
    return path


def sources(es: Elasticsearch, index: str) -> list[dict[str, Any]]:
    hits = helpers.scan(es, index=index, size=5000)
    return sorted((hit["_source"] for hit in hits), key=lambda s: json.dumps(s, sort_keys=True))


def test_rows_differing_only_where_the_bar_falls_are_two_documents(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    path = write(tmp_path, ["2024-05-01T10:00:00Z,a|b,c,1", "2024-05-01T10:00:00Z,a,b|c,2"])
    code, report, err = ingest(es_url, str(path), "--index", index_name)
    assert code == 0, err
    assert (report["rows"], report["indexed"], report["replaced"]) == (2, 2, 0)
    assert [(s["metric"], s["query"], s["value"]) for s in sources(es, index_name)] == [
        ("a", "b|c", 2),
        ("a|b", "c", 1),
    ]


def test_counts_equal_what_the_index_gained(es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path) -> None:
    first = write(tmp_path, [f"{1714557600 + 60 * i},cpu,h1,{i}" for i in range(10)], "first.csv")
    code, report, err = ingest(es_url, str(first), "--index", index_name)
    assert code == 0, err
    assert (report["rows"], report["indexed"], report["replaced"], report["index_documents"]) == (10, 10, 0, 10)

    # 5 rows already in the index, 5 new ones, and one of the new ones twice (the epoch and the ISO spelling).
    rows = [f"{1714557600 + 60 * i},cpu,h1,{i}" for i in range(5, 15)] + ["2024-05-01T10:14:00Z,cpu,h1,14"]
    code, report, err = ingest(es_url, str(write(tmp_path, rows, "second.csv")), "--index", index_name)
    assert code == 0, err
    assert (report["rows"], report["indexed"], report["replaced"], report["index_documents"]) == (11, 5, 6, 15)
    assert es.count(index=index_name)["count"] == 15

    code, report, err = ingest(es_url, str(first), "--index", index_name)  # again: nothing gained
    assert code == 0, err
    assert (report["rows"], report["indexed"], report["replaced"], report["index_documents"]) == (10, 0, 10, 15)


def test_the_last_of_repeated_rows_is_what_the_index_keeps(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    """Repeats far apart (other bulk requests in between) and next to each other: the later row wins each time."""
    rows = ["1714557600,cpu,h1,1"] + [f"{1714557660 + i},cpu,h2,0" for i in range(4999)] + ["1714557600,cpu,h1,2"]
    rows += ["1714557600,cpu,h3,1", "1714557600,cpu,h3,3"]
    code, report, err = ingest(es_url, str(write(tmp_path, rows)), "--index", index_name)
    assert code == 0, err
    assert (report["rows"], report["indexed"], report["replaced"]) == (5003, 5001, 2)
    found = es.search(index=index_name, body={"query": {"terms": {"query": ["h1", "h3"]}}})["hits"]["hits"]
    assert sorted((h["_source"]["query"], h["_source"]["value"]) for h in found) == [("h1", 2), ("h3", 3)]


def test_the_first_and_last_years_taken_reach_the_index(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    rows = ["1000-01-01T00:00:00Z,old,s,1", "1000-06-01T12:00:00.250Z,old,s,2", "9999-12-31T23:59:59Z,old,s,3"]
    code, report, err = ingest(es_url, str(write(tmp_path, rows)), "--index", index_name)
    assert code == 0, err
    assert report["indexed"] == 3
    assert (report["first"], report["last"]) == ("1000-01-01T00:00:00.000Z", "9999-12-31T23:59:59.000Z")
    before_1001 = {"query": {"range": {"@timestamp": {"lt": "1001-01-01T00:00:00Z"}}}}
    assert es.count(index=index_name, body=before_1001)["count"] == 2


def test_long_unicode_names_reach_the_index_intact(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    metric, series = "é" * 256, 'Zürich "東京", q|1'  # 512 bytes: the longest name taken
    path = tmp_path / "m.csv"
    path.write_text(HEADER + f'1714557600,{metric},"Zürich ""東京"", q|1",1\n', encoding="utf-8")
    code, _, err = ingest(es_url, str(path), "--index", index_name)
    assert code == 0, err
    assert [(s["metric"], s["query"]) for s in sources(es, index_name)] == [(metric, series)]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (HEADER + "1714557600,cpu,h1,1\n" + "1" * 70_000 + "\n", "{path}:3: line longer than 65536 bytes (is it CSV?)"),
        (HEADER + "1714557600,cpu,h1,1\n1714557600,cpu,\x1b[31mh1,1\n",
         "{path}:3: series '\\x1b[31mh1' contains a control character"),
        (HEADER + "1714557600,cpu,h1,1\n1714557600,cpu," + "s" * 600 + ",1\n",
         "{path}:3: series " + repr("s" * 60) + "... (600 characters) is 600 bytes, over 512"),
        (HEADER + "0999-06-01T00:00:00Z,cpu,h1,1\n",
         "{path}:2: timestamp '0999-06-01T00:00:00Z' is outside the years 1000 to 9999 (UTC)"),
        (HEADER, None),
    ],
    ids=["long-line", "control-character", "long-name", "year-999", "header-only-next-to-it"],
)  # fmt: skip
def test_a_bad_file_next_to_a_good_one_writes_nothing(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path, text: str, reason: str | None
) -> None:
    good = write(tmp_path, ["1714557600,cpu,h1,1"], "good.csv")
    other = tmp_path / "other.csv"
    other.write_text(text)
    result = CliRunner().invoke(
        cli, ["--es-url", es_url, "ingest", "csv", str(good), str(other), "--index", index_name]
    )
    if reason is None:  # a header-only file is noted, not an error
        assert result.exit_code == 0, result.stderr
        assert f"{other}: no rows after the header" in result.stderr
        return
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"Error: {reason.format(path=other)}\n")
    assert not es.indices.exists(index=index_name)


def test_a_bad_index_name_writes_nothing(es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path) -> None:
    good = write(tmp_path, ["1714557600,cpu,h1,1"])
    for name in (index_name.upper(), f"{index_name} x", f"{index_name},x"):
        result = CliRunner().invoke(cli, ["--es-url", es_url, "ingest", "csv", str(good), "--index", name])
        assert (result.exit_code, result.stdout) == (2, "")
        assert result.stderr.startswith(f"Error: --index: {name!r} is not a valid index name: ")
        assert result.stderr.count("\n") == 1
    assert not es.indices.get(index=f"{index_name}*", expand_wildcards="all")


def test_a_large_import_stays_under_the_memory_limit(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    rows = 200_000
    path = tmp_path / "large.csv"
    with path.open("w") as out:
        out.write(HEADER)
        out.writelines(
            f"{1714557600 + 60 * (i // 1000)},metric_{i % 5},host-{i % 1000},{i * 0.5}\n" for i in range(rows)
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    command = [sys.executable, "-m", "atlas", "--es-url", es_url, "ingest", "csv", str(path), "--index", index_name]
    measured = run_measured(command, tmp_path, env)
    assert measured.code == 0, measured.stderr
    report = json.loads(measured.stdout)
    assert (report["rows"], report["indexed"], report["index_documents"]) == (rows, rows, rows)
    assert measured.peak_mb < RSS_LIMIT_MB

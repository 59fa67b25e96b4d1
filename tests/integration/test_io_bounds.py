"""Imports, waits and stops on the real node: an existing index's mapping is checked before the first document, a
CSV that changes under its import leaves only rows of the file as checked, a server trickling bytes ends a run within
es.request_timeout, the collectd listener stops at --duration and on SIGTERM whatever a sender does and answers
malformed posts 400, and SIGTERM gives a backfill's lease back."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from elasticsearch import Elasticsearch, helpers

from atlas import es_client, simulate
from atlas.cli import cli
from atlas.errors import DataError
from atlas.ingest import csv_file, load
from atlas.settings import load_settings
from tests.integration.test_job import SPEC, START, prepared, settings_for
from tests.local_servers import trickling_server
from tests.unit.test_notify import closed_port

pytestmark = pytest.mark.integration

HEADER = "timestamp,metric,series,value\n"
ROOT = Path(__file__).resolve().parents[2]
STARTUP_MARGIN_S = 15.0  # a Python process starting and importing atlas on a busy 2-core machine, and its exit


def atlas_process(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "atlas", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def count(es: Elasticsearch, index: str) -> int:
    es.indices.refresh(index=index)
    return int(es.count(index=index)["count"])


# ---- the mapping of an existing index ------------------------------------------------------------------------
MAPPINGS = {
    "value long": ({"value": "long"}, "value", "long"),
    "value integer": ({"value": "integer"}, "value", "integer"),
    "value byte": ({"value": "byte"}, "value", "byte"),
    "metric long": ({"metric": "long"}, "metric", "long"),
    "series text": ({"query": "text"}, "query", "text"),
    "timestamp keyword": ({"@timestamp": "keyword"}, "@timestamp", "keyword"),
}


@pytest.mark.parametrize("case", list(MAPPINGS), ids=list(MAPPINGS))
def test_an_index_mapping_a_field_otherwise_is_refused_before_the_first_document(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path, case: str
) -> None:
    types, field, found = MAPPINGS[case]
    properties = {"@timestamp": "date", "metric": "keyword", "query": "keyword", "value": "double", **types}
    es.indices.create(
        index=index_name, body={"mappings": {"properties": {k: {"type": v} for k, v in properties.items()}}}
    )
    path = tmp_path / "in.csv"
    path.write_text(HEADER + "2024-01-01T00:00:00Z,cpu,h1,1.5\n2024-01-01T01:00:00Z,cpu,h1,2.25\n")
    result = CliRunner().invoke(
        cli, ["--es-url", es_url, "ingest", "csv", str(path), "--index", index_name], env={"ATLAS_CONFIG": ""}
    )
    assert result.exit_code == 2, result.output
    expected = "keyword or constant_keyword" if field in ("metric", "query") else None
    assert result.stderr.startswith(f"Error: index {index_name} maps {field} as {found}, not "), result.stderr
    if expected:
        assert f"not {expected}:" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert count(es, index_name) == 0


def test_simulate_checks_the_mapping_of_its_index_too(es: Elasticsearch, es_url: str, index_name: str) -> None:
    es.indices.create(index=index_name, body={"mappings": {"properties": {"value": {"type": "long"}}}})
    result = CliRunner().invoke(
        cli,
        [
            *("--es-url", es_url, "simulate", "--metrics", "1", "--queries", "2", "--nodes", "1", "--hours", "30"),
            *("--scenario", "none", "--index", index_name),
        ],
        env={"ATLAS_CONFIG": ""},
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Error: index {index_name} maps value as long, not double or float"), result.stderr
    assert count(es, index_name) == 0


def test_fields_an_existing_index_lacks_are_added_with_atlas_types(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    es.indices.create(
        index=index_name,
        body={"mappings": {"dynamic": "strict", "properties": {"@timestamp": {"type": "date"}}}},
    )
    path = tmp_path / "in.csv"
    path.write_text(HEADER + "2024-01-01T00:00:00Z,cpu,h1,1.5\n")
    result = CliRunner().invoke(
        cli, ["--es-url", es_url, "ingest", "csv", str(path), "--index", index_name], env={"ATLAS_CONFIG": ""}
    )
    assert result.exit_code == 0, result.output
    properties = es.indices.get_mapping(index=index_name)[index_name]["mappings"]["properties"]
    assert {k: v["type"] for k, v in properties.items()} == {
        "@timestamp": "date",
        "metric": "keyword",
        "query": "keyword",
        "value": "double",
    }
    assert count(es, index_name) == 1


# ---- a CSV that changes under its import ---------------------------------------------------------------------
ROWS = 120_000  # about 3 MiB: three blocks of the reader


def big_csv(path: Path) -> dict[tuple[str, str], float]:
    """Rows of 20 series, hourly; returns (series, timestamp) -> value."""
    rows = {(f"h{i % 20}", f"{1704067200 + (i // 20) * 3600}"): float(i) for i in range(ROWS)}
    path.write_text(HEADER + "".join(f"{ts},cpu,{series},{value}\n" for (series, ts), value in rows.items()))
    return rows


def stored(es: Elasticsearch, index: str) -> dict[tuple[str, str], float]:
    """(series, epoch seconds) -> value of every document of the index."""
    es.indices.refresh(index=index)
    return {
        (hit["_source"]["query"], str(int(csv_file.parse_timestamp(hit["_source"]["@timestamp"]).timestamp()))): hit[
            "_source"
        ]["value"]
        for hit in helpers.scan(es, index=index, size=5000)
    }


def test_a_csv_cut_during_its_import_leaves_only_rows_of_the_file_checked_and_says_how_to_finish(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    settings = load_settings(None, {"es.urls": [es_url]})
    client = es_client.connect(settings.es)
    path = tmp_path / "in.csv"
    rows = big_csv(path)
    original = path.read_bytes()
    cut = threading.Event()

    def cut_the_file(_: int) -> None:  # after the first bulk answer: the reader is still in the first block
        if not cut.is_set():
            cut.set()
            path.write_bytes(original[: len(original) // 2])

    with csv_file.check_csv_files([path]) as checked, pytest.raises(DataError) as caught:
        load.import_samples(client, settings.source, index_name, checked, progress=cut_the_file)
    message = str(caught.value)
    assert f"{path}: changed while it was being imported (it shrank from line " in message, message
    assert "import the file again once it stays unchanged to finish" in message
    assert message.endswith(f"(index {index_name})")
    line = int(message.split("from line ")[1].split(" ")[0])
    got = stored(es, index_name)
    assert 0 < len(got) <= line - 2  # rows before that line only
    assert all(rows[key] == value for key, value in got.items())  # each as the file had it when checked
    path.write_bytes(original)  # import again to finish: one clean import's documents
    with csv_file.check_csv_files([path]) as checked:
        load.import_samples(client, settings.source, index_name, checked)
    assert stored(es, index_name) == rows


def test_a_csv_that_grows_during_its_import_gives_exactly_the_rows_checked(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    settings = load_settings(None, {"es.urls": [es_url]})
    client = es_client.connect(settings.es)
    path = tmp_path / "in.csv"
    rows = big_csv(path)
    grew = threading.Event()

    def append(_: int) -> None:
        if not grew.is_set():
            grew.set()
            with path.open("a") as handle:
                handle.write("".join(f"1704067200,cpu,late{i},1\n" for i in range(1000)))

    with csv_file.check_csv_files([path]) as checked:
        report = load.import_samples(client, settings.source, index_name, checked, progress=append)
    assert report.rows == ROWS
    assert stored(es, index_name) == rows


# ---- a server trickling bytes ----------------------------------------------------------------------------------
@pytest.mark.parametrize("retries", [0, 1])
def test_a_server_sending_a_byte_a_second_ends_a_run_within_the_request_timeout(tmp_path: Path, retries: int) -> None:
    config = tmp_path / "atlas.yml"
    config.write_text(f"es:\n  request_timeout: 5s\n  max_retries: {retries}\nsource:\n  metrics: [cpu]\n")
    bound = 5 * (1 + retries) + STARTUP_MARGIN_S
    with trickling_server(interval_s=1.0, lifetime_s=bound + 30) as url:
        started = time.monotonic()
        proc = atlas_process("--config", str(config), "run", env={"ATLAS_ES_URL": url})
        try:
            _, err = proc.communicate(timeout=bound + 20)
        finally:
            proc.kill()
        elapsed = time.monotonic() - started
    assert elapsed <= bound, f"{elapsed:.1f} s: {err}"
    assert proc.returncode == 1, err
    assert err.strip().splitlines() == [
        f"Error: asking the cluster for its version: no answer from {url} in 5 s, tried {1 + retries} times"
        " (es.request_timeout, es.max_retries)"
    ]


# ---- the collectd listener -------------------------------------------------------------------------------------
@contextmanager
def listener(es_url: str, index: str, *extra: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = closed_port()
    proc = atlas_process(
        "--es-url", es_url, "ingest", "collectd", "--listen", f"127.0.0.1:{port}", "--index", index, *extra,
        env={"ATLAS_CONFIG": ""},
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline() == f"listening on http://127.0.0.1:{port}/\n"
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextmanager
def slow_sender(port: int) -> Iterator[None]:
    """A client that sends a post's headers and then one byte of its body a second, until stopped."""
    stop = threading.Event()

    def send() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
            while not stop.wait(1.0):
                try:
                    conn.sendall(b"[")
                except OSError:
                    return

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def test_the_listener_stops_at_its_duration_with_a_slow_sender(es_url: str, index_name: str) -> None:
    with listener(es_url, index_name, "--duration", "3s") as (proc, port), slow_sender(port):
        started = time.monotonic()
        out, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - started
    assert elapsed <= 3 + 5, f"{elapsed:.1f} s after listening began: {err}"
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert json.loads(out)["refused"] == 1


def test_sigterm_stops_the_listener_at_once_with_a_slow_sender(es_url: str, index_name: str) -> None:
    with listener(es_url, index_name) as (proc, port), slow_sender(port):
        time.sleep(2)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - started
    assert elapsed <= 5, f"{elapsed:.1f} s after SIGTERM: {err}"
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert json.loads(out)["refused"] == 1


@pytest.mark.parametrize(
    ("sent", "refused", "said"),
    [
        # in the headers: no request to refuse, one warning for the connection
        (
            b"POST / HTTP/1.1\r\nHost: x\r\n",
            0,
            "a connection from 127.0.0.1 ended: [Errno 104] Connection reset by peer",
        ),
        # in the body: the post is refused, with why
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n[",
            1,
            "refused a post from 127.0.0.1: the post's connection failed: [Errno 104] Connection reset by peer",
        ),
    ],
)
def test_a_sender_that_resets_its_connection_mid_request_is_a_warning_not_a_traceback(
    es_url: str, index_name: str, sent: bytes, refused: int, said: str
) -> None:
    """A sender resets its connection (SO_LINGER 0) mid-request: one warning line, never a traceback, and the
    listener goes on answering (the next sender's GET is refused as usual)."""
    linger_zero = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")
    with listener(es_url, index_name) as (proc, port):
        conn = socket.create_connection(("127.0.0.1", port), timeout=5)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger_zero)
        conn.sendall(sent)
        time.sleep(0.5)  # the listener is reading the rest
        conn.close()
        with pytest.raises(urllib.error.HTTPError) as get:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        assert get.value.code == 405
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert said in err, err
    assert (json.loads(out)["posts"], json.loads(out)["refused"]) == (0, refused + 1)


NAMES = {"dsnames": ["value"], "host": "h", "plugin": "p", "type": "t"}
MALFORMED = {
    "deeply nested JSON": b"[" * 200_000 + b"]" * 200_000,
    "a value of 400 digits": json.dumps([{**NAMES, "values": [int("9" * 400)], "time": 1714557600}]).encode(),
    "a time of 400 digits": json.dumps([{**NAMES, "values": [1], "time": int("9" * 400)}]).encode(),
    "an integer of 5000 digits": b'[{"values": [' + b"9" * 5000 + b"]}]",
}


def post(port: int, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_malformed_posts_are_answered_400_without_a_traceback(es: Elasticsearch, es_url: str, index_name: str) -> None:
    with listener(es_url, index_name) as (proc, port):
        answers = {name: post(port, body) for name, body in MALFORMED.items()}
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert answers == {
        "deeply nested JSON": (400, b"JSON nested too deeply for a list of value lists\n"),
        "a value of 400 digits": (200, b"ok\n"),  # too large for a float: an unknown value, as collectd's null
        "a time of 400 digits": (
            400,
            b"value list 1: time " + b"9" * 60 + b"... (400 characters) is not epoch seconds\n",
        ),
        "an integer of 5000 digits": (400, b"a number of thousands of digits: not a value collectd sends\n"),
    }
    assert "Traceback" not in err, err
    report: dict[str, Any] = json.loads(out)
    assert (report["posts"], report["refused"], report["indexed"], report["unknown"]) == (1, 3, 0, 1)


# ---- SIGTERM gives the lease back ------------------------------------------------------------------------------
@pytest.mark.parametrize("when", ["lease_owner", "last_window_end"], ids=["taking the lease", "after a chunk"])
def test_sigterm_during_a_backfill_gives_the_lease_back_and_exits_143(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path, when: str
) -> None:
    source_index = f"{index_name}-source"
    settings = settings_for(es_url, source_index, index_name)
    client = es_client.connect(settings.es)
    documents = simulate.simulate_documents(SPEC)
    load.load_documents(client, settings.source, source_index, documents, extra_keywords=["node"])
    prepared(es_url, source_index, index_name)
    config = tmp_path / "atlas.yml"
    config.write_text(
        f"es:\n  urls: [{es_url}]\nsource:\n  index: {source_index}\nresults:\n  prefix: {index_name}\n"
        "surprise:\n  percentiles: [90, 99]\n  mode: last\n"
    )
    first, last = START + timedelta(hours=48), START + timedelta(hours=159)
    proc = atlas_process("--config", str(config), "backfill", "--from", first.isoformat(), "--to", last.isoformat())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:  # stop it once it holds the lease
        state = es.get(index=f"{index_name}-state", id="default", ignore=404)
        if state.get("found") and state["_source"].get(when):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the backfill ended before it could be stopped; make it longer"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "Terminated (SIGTERM).", err
    assert "Traceback" not in err
    held = es.get(index=f"{index_name}-state", id="default")["_source"]
    assert not held.get("lease_owner"), held


def test_sigterm_during_a_csv_import_stops_it_saying_what_is_indexed_and_a_second_import_finishes(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    path = tmp_path / "in.csv"
    rows = 300_000
    path.write_text(HEADER + "".join(f"{1704067200 + (i // 50) * 60},cpu,h{i % 50},{i}\n" for i in range(rows)))
    proc = atlas_process("--es-url", es_url, "ingest", "csv", str(path), "--index", index_name)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:  # stop it once documents arrive
        # 404 before the index exists, 503 while its shard starts
        if es.count(index=index_name, ignore=[404, 503]).get("count", 0) > 0:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the import ended before it could be stopped; make it longer"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("ingest")]
    assert lines[-1] == "Terminated (SIGTERM).", err
    stopped = [line for line in lines if line.startswith("stopped: at least ")]
    assert len(stopped) == 1 and stopped[0].endswith(
        f" of {rows} rows are indexed into {index_name}; importing the same files again finishes the import"
        " (each row rewrites its own document)"
    ), err
    assert int(stopped[0].split()[3]) <= count(es, index_name) < rows
    again = CliRunner().invoke(
        cli, ["--es-url", es_url, "ingest", "csv", str(path), "--index", index_name], env={"ATLAS_CONFIG": ""}
    )
    assert again.exit_code == 0, again.output
    assert count(es, index_name) == rows

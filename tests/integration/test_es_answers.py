"""What atlas says when the cluster answers badly: a server that is not Elasticsearch, HTML error pages, 429/503,
no answer in time, nothing listening, and the read-only block of a full disk. One line each, exit code 1, and
after a lifted block the next run finishes the work."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from elasticsearch import Elasticsearch

from atlas import es_client
from atlas.cli import cli
from atlas.settings import load_settings
from tests.unit.test_notify import closed_port

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    delay_s: float = 0.0


@contextmanager
def answering(answer: Answer) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that gives every request the same answer."""

    class Handler(BaseHTTPRequestHandler):
        def reply(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(answer.delay_s)
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_HEAD = reply

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


HTML = b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
CASES = {
    "html 200 (not Elasticsearch)": (Answer(200, HTML, "text/html"), "answered with something that is not JSON"),
    "json 200 without nodes": (Answer(200, b'{"hello": "world"}'), "did not answer like Elasticsearch"),
    "html 502 from a proxy": (Answer(502, HTML, "text/html"), "answered 502"),
    "429 too many requests": (Answer(429, b'{"error": "busy"}'), "is overloaded or not ready (HTTP 429)"),
    "503 unavailable": (Answer(503, b"{}"), "is overloaded or not ready (HTTP 503)"),
    "404 unknown body": (Answer(404, b"nothing here"), "answered 404: nothing here"),
    "no answer in time": (Answer(200, b"{}", delay_s=3.0), "in 1 s, tried 2 times (es.request_timeout"),
}


@pytest.mark.parametrize(("answer", "said"), CASES.values(), ids=CASES.keys())
def test_a_bad_answer_is_one_line_and_exit_1(answer: Answer, said: str, tmp_path: Path) -> None:
    config = tmp_path / "atlas.yml"
    config.write_text("es:\n  request_timeout: 1s\n  max_retries: 1\n")
    with answering(answer) as url:
        started = time.monotonic()
        result = CliRunner().invoke(cli, ["--config", str(config), "--es-url", url, "setup"])
        took = time.monotonic() - started
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert said in lines[0]
    assert url.split("//")[1] in lines[0] or "answered 4" in lines[0] or "answered 5" in lines[0]
    assert took < 10  # bounded: at most (1 + max_retries) x request_timeout of waiting


def test_nothing_listening_says_connection_refused(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = CliRunner().invoke(cli, ["--es-url", url, "setup"])
    assert result.exit_code == 1
    assert result.stderr.strip().endswith(f": cannot reach Elasticsearch at {url} (connection refused, tried 4 times)")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_read_only_block_is_named_and_the_next_run_catches_up(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    config = tmp_path / "atlas.yml"
    config.write_text(
        f"es:\n  urls: [{es_url}]\nsource:\n  index: {index_name}-metrics\nresults:\n  prefix: {index_name}\n"
    )
    runner = CliRunner()
    base = ["--config", str(config)]
    assert runner.invoke(cli, [*base, "setup"]).exit_code == 0
    simulate = ["simulate", "--scenario", "none", "--metrics", "1", "--queries", "4", "--nodes", "1", "--hours", "60"]
    assert runner.invoke(cli, [*base, *simulate]).exit_code == 0
    # What a node does to its indices when its disk passes the flood-stage watermark.
    blocked = f"{index_name}-surprise"
    es.indices.put_settings(index=blocked, body={"index.blocks.read_only_allow_delete": True})
    backfill = ["backfill", "--from", "2024-01-02T00:00:00Z", "--to", "2024-01-03T00:00:00Z"]
    result = runner.invoke(cli, [*base, *backfill])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("Error")] == lines[-1:]
    assert "the index is read-only (index.blocks.read_only_allow_delete" in lines[-1]
    assert "flood-stage watermark" in lines[-1]

    es.indices.put_settings(index=blocked, body={"index.blocks.read_only_allow_delete": None})
    again = runner.invoke(cli, [*base, *backfill])
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["windows"] == 25
    es.indices.refresh(index=blocked)
    assert es.count(index=blocked)["count"] == 25


def test_close_shuts_every_pooled_connection(es_url: str) -> None:
    client = es_client.connect(load_settings(None, {"es.urls": [es_url]}).es)
    assert client.server.number  # one request, so a connection is pooled
    pools = [conn.pool for conn in client.raw.transport.connection_pool.connections]
    assert pools and all(pool.pool is not None for pool in pools)
    client.close()
    assert all(pool.pool is None for pool in pools)  # urllib3 empties a closed pool's queue to None

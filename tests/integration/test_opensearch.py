"""OpenSearch 2.19.6 (its integ-test-zip and lang-painless module from Maven Central, started by atlas's own code):
atlas knows it for OpenSearch, the parity cases of 7.10.2 equal reference.py to 1e-9 there, every command that needs
no Watcher works, built-in alerts are sent, and `atlas watch install` says in one line that Watcher is missing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import elasticsearch
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from atlas import es_client, job
from atlas.cli import cli
from atlas.es_server import Server, moving_fn_takes_shift
from atlas.indices import setup_indices
from atlas.ingest import load
from atlas.settings import load_settings
from tests.es_nodes import running_node
from tests.integration.test_run_alerts import SPIKE, START, SUBJECT, documents, settings_for
from tests.integration.test_surprise_parity import CASES, Case, assert_case_matches_reference, index_datasets
from tests.local_servers import http_server, json_bodies, smtp_server

pytestmark = pytest.mark.integration

VERSION = "opensearch-2.19.6"
PORT = 9294


@dataclass(frozen=True)
class Node:
    url: str
    data_dir: Path


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    """One OpenSearch node for the whole module (every test of OpenSearch is here)."""
    with running_node(VERSION, PORT) as (url, data_dir):
        yield Node(url, data_dir)


@pytest.fixture(scope="module")
def parity_index(node: Node) -> tuple[str, pd.DataFrame]:
    index = "atlas-test-opensearch-parity"  # the node is this module's own: it goes with the node
    return index, index_datasets(node.url, index)


def test_atlas_knows_the_server_for_opensearch_and_speaks_7_10s_api_there(node: Node) -> None:
    client = es_client.connect(load_settings(None, {"es.urls": [node.url]}).es)
    assert client.server == Server("opensearch", "2.19.6")
    assert client.version == (7, 10)  # never Elasticsearch 2.19: composable templates, moving_fn with shift
    assert moving_fn_takes_shift(client.version)
    es_client.require_script_modules(client)  # painless is there, and OpenSearch needs no aggregations module
    # the client atlas pins has no product check (7.14 added it): it talks to OpenSearch like to Elasticsearch
    assert elasticsearch.__version__[:2] == (7, 13)
    assert client.raw.info()["version"]["distribution"] == "opensearch"
    status = CliRunner().invoke(cli, ["es", "status", "--version", VERSION, "--data", str(node.data_dir)])
    assert status.exit_code == 0, status.stderr
    assert status.stdout.startswith(f"up {node.url} nodes=1 version={VERSION} pids=")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_opensearch_equals_reference(node: Node, parity_index: tuple[str, pd.DataFrame], case: Case) -> None:
    index, frame = parity_index
    assert_case_matches_reference(node.url, index, frame, case)


def atlas(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--config", str(config), *args])
    return result.exit_code, result.stdout, result.stderr


def test_every_command_without_watcher_works(node: Node, tmp_path: Path) -> None:
    prefix = "atlas-os-cli"
    config = tmp_path / "atlas.yml"
    config.write_text(
        yaml.safe_dump(
            {"es": {"urls": [node.url]}, "source": {"index": f"{prefix}-metrics"}, "results": {"prefix": prefix}}
        )
    )
    code, out, err = atlas(config, "setup")
    assert code == 0, err
    assert set(json.loads(out)["indices"]) == {f"{prefix}-surprise", f"{prefix}-anomalies", f"{prefix}-state"}
    assert atlas(config, "setup")[0] == 0  # idempotent

    truth = tmp_path / "truth.csv"
    simulate = [
        "simulate",
        "--metrics",
        "5",
        "--queries",
        "10",
        "--nodes",
        "1",
        "--hours",
        "200",
        "--truth",
        str(truth),
    ]
    code, out, err = atlas(config, *simulate)
    assert code == 0, err
    assert json.loads(out)["indexed"] == 5 * 10 * 1 * 200

    rows = ["timestamp,metric,series,value", "2024-03-01T00:00:00Z,disk,h1,0.5", "1709254800,disk,h2,0.75"]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    code, out, err = atlas(config, "ingest", "csv", str(tmp_path / "m.csv"), "--index", f"{prefix}-csv")
    assert code == 0, err
    assert json.loads(out)["indexed"] == 2

    code, out, err = atlas(config, "backfill", "--from", "2024-01-03T00:00:00Z", "--to", "2024-01-09T00:00:00Z")
    assert code == 0, err
    assert json.loads(out)["windows"] == 6 * 24 + 1
    code, out, err = atlas(config, "run", "--at", "2024-01-09T05:30:00Z")
    assert code == 0, err
    assert json.loads(out)["windows"] == 5  # the windows ending 01:00 to 05:00 after the backfill's last

    code, out, err = atlas(config, "anomalies", "--from", "2024-01-03", "--to", "2024-01-10", "--format", "json")
    assert code == 0, err
    # the two disruptions of the blog's scenario in these hours: metrics 3 and 4 at 145-151, 0 and 2 at 172-181
    assert {e["metric"] for e in json.loads(out)} == {"metric_0", "metric_2", "metric_3", "metric_4"}
    code, out, err = atlas(
        config,
        "evaluate",
        "--truth",
        str(truth),
        "--from",
        "2024-01-03",
        "--to",
        "2024-01-09T05:00:00Z",
        "--format",
        "json",
    )
    assert code == 0, err
    scores = json.loads(out)["all"]
    assert (scores["events_found"], scores["events_missed"], scores["false_events"]) == (4, 0, 0)

    report = tmp_path / "report.html"
    code, out, err = atlas(
        config, "report", "--from", "2024-01-03", "--to", "2024-01-09", "--out", str(report), "--truth", str(truth)
    )
    assert code == 0, err
    assert "metric_3" in report.read_text()

    code, out, err = atlas(config, "watch", "execute", "--at", "2024-01-07T03:00:00Z")
    assert code == 0, err  # without Watcher atlas runs the watch's search and condition itself
    code, out, err = atlas(config, "watch", "install")
    assert (code, out) == (1, "")
    assert err == (
        f"Error: the cluster at {node.url} is OpenSearch 2.19.6, which has no Watcher: use atlas run's built-in"
        " alerts instead (alerts.slack_webhook, alerts.email_to)\n"
    )


def test_run_sends_built_in_alerts(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    with http_server() as (slack_url, slack), smtp_server() as (port, mail):
        monkeypatch.setenv("ATLAS_SLACK_WEBHOOK_URL", slack_url + "/services/secret-token")
        settings = settings_for(node.url, "atlas-os-alerts", port)
        client = es_client.connect(settings.es)
        load.load_documents(client, settings.source, settings.source.index, documents(), extra_keywords=["node"])
        setup_indices(client, settings)
        job.backfill(settings, client, START + timedelta(hours=60), START + timedelta(hours=SPIKE))
        first = job.run_once(settings, client, START + timedelta(hours=SPIKE + 1, minutes=30))
    assert [e.metric for e in first.events] == ["cpu"]
    assert [(d.channel, d.sent) for d in first.deliveries] == [("slack", True), ("email", True)]
    assert mail.messages[0]["Subject"] == SUBJECT
    assert json_bodies(slack)[0]["text"].startswith(f"*{SUBJECT}*")

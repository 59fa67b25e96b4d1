"""Elasticsearch faults during work, on a real 3-node cluster (every index 3 shards, 1 replica): a node killed in
the middle of a backfill and of an hourly run. The job finishes or fails with one line, and the next run leaves
exactly what an undisturbed run leaves."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from atlas import es_client, simulate
from atlas.embedded import ClusterStatus, default_home, start_cluster, stop_cluster
from atlas.es_client import EsClient
from atlas.indices import source_mapping
from atlas.ingest import load
from atlas.settings import load_settings
from tests.es_nodes import DIST
from tests.integration.test_job import SPEC, START

pytestmark = pytest.mark.integration

PORT = 9260
SOURCE = "atlas-faults-source"
FIRST, MIDDLE, LAST = START + timedelta(hours=48), START + timedelta(hours=100), START + timedelta(hours=159)
BACKFILL = ["backfill", "--from", FIRST.isoformat(), "--to", MIDDLE.isoformat()]
HOURLY = ["run", "--at", (LAST + timedelta(minutes=30)).isoformat()]  # catches up MIDDLE + 1h .. LAST


@dataclass(frozen=True)
class Cluster:
    data_dir: Path
    urls: list[str]


def start(data_dir: Path) -> ClusterStatus:
    """Start (or restart: a cluster with a dead node is stopped and started whole) and wait for green."""
    status, _ = start_cluster(data_dir=data_dir, dist_dir=DIST, nodes=3, port=PORT, heap="512m")
    client = es_client.connect(load_settings(None, {"es.urls": [status.url]}).es)
    client.raw.cluster.health(wait_for_status="green", timeout="120s")
    return status


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    default_home().mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="test-es-faults-", dir=default_home()))
    data_dir.chmod(0o755)
    try:
        status = start(data_dir)
        settings = load_settings(None, {"es.urls": [status.url]})
        client = es_client.connect(settings.es)
        mapping = source_mapping(settings.source, ["node"])
        body = {"settings": {"number_of_shards": 3, "number_of_replicas": 1}, "mappings": mapping}
        es_client.create_index(client, SOURCE, body)
        load.load_documents(client, settings.source, SOURCE, simulate.simulate_documents(SPEC), extra_keywords=["node"])
        yield Cluster(data_dir, [f"http://127.0.0.1:{PORT + i}" for i in range(3)])
    finally:
        stop_cluster(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


def write_config(path: Path, urls: list[str], prefix: str) -> Path:
    config = {
        "es": {"urls": urls, "request_timeout": "30s"},
        "source": {"index": SOURCE},
        "results": {"prefix": prefix, "shards": 3, "replicas": 1},
        "surprise": {"percentiles": [90, 99], "mode": "last"},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def atlas(config: Path, command: list[str]) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "atlas", "--config", str(config), *command]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def documents(client: EsClient, index: str) -> dict[str, str]:
    es_client.refresh(client, index)
    body = {"size": 10_000, "query": {"match_all": {}}, "sort": ["_doc"]}
    hits = es_client.search(client, index, body)["hits"]["hits"]
    return {hit["_id"]: json.dumps(hit["_source"], sort_keys=True) for hit in hits}


def kill_a_node_once_past(client: EsClient, prefix: str, proc: subprocess.Popen[str], done: str, pid: int) -> None:
    """SIGKILL node `pid` as soon as the job records a window after `done` (its first chunk), then let it end."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        state = es_client.get_document(client, f"{prefix}-state", "default")
        if state is not None and str(state.source.get("last_window_end") or "") > done:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the job recorded no chunk before it ended")
    _, err = proc.communicate(timeout=300)
    errors = [line for line in err.splitlines() if line.startswith("Error: ") or "Traceback" in line]
    assert proc.returncode == 0 or (proc.returncode == 1 and len(errors) == 1), err


def finish(config: Path, command: list[str]) -> None:
    proc = atlas(config, command)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def test_a_node_killed_during_a_backfill_and_during_a_run_loses_nothing(cluster: Cluster, tmp_path: Path) -> None:
    urls = cluster.urls[:2]  # the client talks to the nodes that stay up; node-2 holds shards of every index
    clean = write_config(tmp_path / "clean.yml", urls, "atlas-faults-clean")
    hit = write_config(tmp_path / "hit.yml", urls, "atlas-faults-hit")
    client = es_client.connect(load_settings(clean, {}).es)
    for config in (clean, hit):
        finish(config, ["setup"])
    finish(clean, BACKFILL)
    finish(clean, HOURLY)

    status = start(cluster.data_dir)
    kill_a_node_once_past(client, "atlas-faults-hit", atlas(hit, BACKFILL), "", status.pids[2])
    finish(hit, BACKFILL)  # on the two nodes left, replicas promoted

    status = start(cluster.data_dir)  # the cluster whole again, then the same during the hourly run's catch-up
    kill_a_node_once_past(
        client, "atlas-faults-hit", atlas(hit, HOURLY), MIDDLE.isoformat().replace("+00:00", "Z"), status.pids[2]
    )
    finish(hit, HOURLY)

    for kind in ("surprise", "anomalies"):
        assert documents(client, f"atlas-faults-hit-{kind}") == documents(client, f"atlas-faults-clean-{kind}"), kind
    assert len(documents(client, "atlas-faults-hit-surprise")) == 2 * 112

"""The embedded Elasticsearch as real processes: start, idempotent start, status, stop, and a 3-node cluster
whose spread shards give the reference's surprise numbers."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from atlas import es_client
from atlas.distributions import DEFAULT_VERSION
from atlas.embedded import cluster_status, default_home, start_cluster, stop_cluster
from atlas.errors import ConfigError
from atlas.indices import source_mapping
from atlas.ingest import load
from atlas.settings import load_settings
from tests.integration.test_surprise_parity import WINDOW_ENDS, datasets
from tests.parity import assert_windows_match_reference

pytestmark = pytest.mark.integration

DIST = default_home() / "dist"  # shared by every test and run: the 88 MB download happens once
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with _NO_PROXY.open(request, timeout=90) as response:
        return json.loads(response.read())


def wait_gone(pids: tuple[int, ...], timeout_s: float = 10.0) -> list[int]:
    """The pids still in /proc after timeout_s (an exited node stays there until its parent reaps it)."""
    deadline = time.monotonic() + timeout_s
    while (left := [pid for pid in pids if os.path.exists(f"/proc/{pid}")]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: as root that is 0700, and the node runs as nobody.
    default_home().mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="test-es-", dir=default_home()))
    path.chmod(0o755)
    yield path
    stop_cluster(path)  # whatever a failing test left running
    shutil.rmtree(path, ignore_errors=True)


def test_one_node_start_is_idempotent_and_stop_ends_it(data_dir: Path) -> None:
    status, already_running = start_cluster(data_dir=data_dir, dist_dir=DIST, port=9270, heap="512m")

    assert not already_running
    assert (status.is_up, status.url, status.nodes, status.version) == (
        True,
        "http://127.0.0.1:9270",
        1,
        DEFAULT_VERSION,
    )
    assert len(status.pids) == 1
    assert cluster_status(data_dir) == status
    assert call("GET", f"{status.url}/_cluster/health")["cluster_name"] == "atlas-embedded"

    again, already_running = start_cluster(data_dir=data_dir, dist_dir=DIST, port=9270, heap="512m")
    assert already_running
    assert again.pids == status.pids
    with pytest.raises(ConfigError, match=r"already running with 1 node\(s\) of 7.10.2 at http://127.0.0.1:9270"):
        start_cluster(data_dir=data_dir, dist_dir=DIST, port=9271, heap="512m")

    assert stop_cluster(data_dir) == status.pids
    assert cluster_status(data_dir).is_up is False
    assert wait_gone(status.pids) == []
    assert not (data_dir / "cluster.json").exists()
    assert stop_cluster(data_dir) == ()


def assert_surprise_matches_reference_on_spread_shards(url: str) -> None:
    """The parity data sets in a 3-shard index: the distributed reduce gives the reference's numbers."""
    index = "atlas-test-spread-parity"
    frame = datasets()
    for mode in ("max", "last"):
        settings = load_settings(
            None,
            {
                "es.urls": [url],
                "source.index": index,
                "surprise.mode": mode,
                "surprise.percentiles": [90, 99],
                "surprise.top_series": 1000,
            },
        )
        client = es_client.connect(settings.es)
        if mode == "max":
            mapping = source_mapping(settings.source, ["node"])
            es_client.create_index(client, index, {"settings": {"number_of_shards": 3}, "mappings": mapping})
            docs = (
                {"@timestamp": ts.isoformat(), "metric": m, "query": q, "node": "n0", "value": v}
                for ts, m, q, v in frame.itertuples(index=False)
            )
            load.load_documents(client, settings.source, index, docs, extra_keywords=["node"])
        assert assert_windows_match_reference(client, settings, frame, WINDOW_ENDS)


def test_three_nodes_form_one_cluster_and_spread_shards(data_dir: Path) -> None:
    status, _ = start_cluster(data_dir=data_dir, dist_dir=DIST, nodes=3, port=9280, heap="512m")

    assert (status.is_up, status.nodes, len(status.pids)) == (True, 3, 3)
    assert call("GET", f"{status.url}/_cluster/health")["number_of_nodes"] == 3
    for port in (9281, 9282):  # every node answers on its own HTTP port
        assert call("GET", f"http://127.0.0.1:{port}/_cluster/health")["number_of_nodes"] == 3

    index = "atlas-test-spread"
    call("PUT", f"{status.url}/{index}", {"settings": {"number_of_shards": 3, "number_of_replicas": 0}})
    health = call("GET", f"{status.url}/_cluster/health/{index}?wait_for_status=green&timeout=60s")
    assert health["status"] == "green"
    shards = call("GET", f"{status.url}/_cat/shards/{index}?format=json")
    assert [shard["state"] for shard in shards] == ["STARTED"] * 3
    assert len({shard["node"] for shard in shards}) == 3

    assert_surprise_matches_reference_on_spread_shards("http://127.0.0.1:9282")  # asked through the third node
    assert stop_cluster(data_dir) == status.pids
    assert wait_gone(status.pids) == []

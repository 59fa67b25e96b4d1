"""start_cluster refuses bad options and taken ports before it fetches or launches anything; stop spares strangers."""

from __future__ import annotations

import json
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from atlas.embedded import cluster_status, start_cluster, stop_cluster
from atlas.errors import ConfigError, EsUnavailable


@dataclass(frozen=True)
class BadOption:
    nodes: int = 1
    port: int = 9270
    heap: str = "512m"
    message: str = ""


CASES = {
    "heap without unit": BadOption(heap="512", message="--heap"),
    "heap in gb": BadOption(heap="1gb", message="--heap"),
    "heap zero": BadOption(heap="0m", message="--heap"),
    "heap empty": BadOption(heap="", message="--heap"),
    "no nodes": BadOption(nodes=0, message="--nodes"),
    "ten nodes": BadOption(nodes=10, message="--nodes"),
    "privileged port": BadOption(port=80, message="--port"),
    "port too high": BadOption(port=65001, message="--port"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_option_is_refused_before_anything_starts(tmp_path: Path, case: BadOption) -> None:
    data_dir, dist_dir = tmp_path / "es", tmp_path / "dist"

    with pytest.raises(ConfigError, match=case.message):
        start_cluster(data_dir=data_dir, dist_dir=dist_dir, nodes=case.nodes, port=case.port, heap=case.heap)

    assert not data_dir.exists()
    assert not dist_dir.exists()


def test_taken_port_is_named_before_anything_starts(tmp_path: Path) -> None:
    data_dir, dist_dir = tmp_path / "es", tmp_path / "dist"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(EsUnavailable, match=f"port {port} "):
            start_cluster(data_dir=data_dir, dist_dir=dist_dir, port=port)

    assert not data_dir.exists()
    assert not dist_dir.exists()


def test_stop_never_signals_a_recorded_pid_that_is_not_our_node(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        tmp_path.joinpath("cluster.json").write_text(
            json.dumps(
                {"url": "http://127.0.0.1:9270", "nodes": 1, "port": 9270, "pids": [stranger.pid], "node_dirs": []}
            )
        )

        assert cluster_status(tmp_path).is_up is False
        assert stop_cluster(tmp_path) == ()
        assert stranger.poll() is None
        assert not tmp_path.joinpath("cluster.json").exists()
    finally:
        stranger.kill()
        stranger.wait()

"""Nodes of other Elasticsearch versions, started by atlas's own code for the version matrix tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from atlas.embedded import default_home, start_cluster, stop_cluster
from atlas.embedded_nodes import NodeOptions

DIST = default_home() / "dist"  # shared by every test and run: each version is downloaded once


@contextmanager
def running_node(version: str, port: int, options: NodeOptions | None = None) -> Iterator[tuple[str, Path]]:
    """One node of `version` on `port` in a fresh data directory; yields its URL and that directory."""
    # Not pytest's tmp_path: as root that is 0700, and the node runs as nobody.
    default_home().mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix=f"test-es-{version}-", dir=default_home()))
    data_dir.chmod(0o755)
    try:
        status, _ = start_cluster(
            data_dir=data_dir, dist_dir=DIST, port=port, heap="512m", version=version, options=options
        )
        yield status.url, data_dir
    finally:
        stop_cluster(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)

"""`atlas es`: the embedded Elasticsearch (or OpenSearch) for trying and testing."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from atlas import embedded
from atlas.distributions import DEFAULT_VERSION, DISTRIBUTIONS, distribution

log = logging.getLogger("atlas")


@click.group()
def es() -> None:
    """The embedded Elasticsearch for trying and testing (Elastic's own distributions or OpenSearch, fetched with
    mvn)."""


version_option = click.option(
    "--version",
    "version",
    type=click.Choice(list(DISTRIBUTIONS)),
    default=DEFAULT_VERSION,
    show_default=True,
    help="server version: 7.10.2 runs everything; 6.8.23 has Watcher and security; 8.19.9 has no scripts;"
    " opensearch-2.19.6 is OpenSearch (everything but Watcher)",
)
data_option = click.option(
    "--data",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="directory for node data, logs and the pid files [default: $ATLAS_HOME/es, es-<version> for others]",
)


@es.command("start")
@click.option("--nodes", default=1, show_default=True, help="number of nodes of the local cluster")
@click.option(
    "--port",
    type=int,
    default=None,
    help="HTTP port of the first node (node n: port + n) [default: 9250; 9240 for OpenSearch, so both can run]",
)
@click.option("--heap", default="1g", show_default=True, help="JVM heap of each node")
@version_option
@data_option
def es_start(nodes: int, port: int | None, heap: str, version: str, data: Path | None) -> None:
    """Start the embedded Elasticsearch or OpenSearch (idempotent) and print its URL."""
    status, already = embedded.start_cluster(
        data_dir=data or embedded.default_data_dir(version),
        dist_dir=embedded.default_home() / "dist",
        nodes=nodes,
        port=port,
        heap=heap,
        version=version,
    )
    product, number = distribution(version).product_name, str(status.version).removeprefix("opensearch-")
    log.info("%s %d node(s), %s %s", "already running:" if already else "started", status.nodes, product, number)
    click.echo(status.url)


@es.command("stop")
@version_option
@data_option
def es_stop(version: str, data: Path | None) -> None:
    """Stop the embedded Elasticsearch or OpenSearch started from --data (only those processes)."""
    pids = embedded.stop_cluster(data or embedded.default_data_dir(version))
    click.echo(f"stopped pids {' '.join(map(str, pids))}" if pids else "not running")


@es.command("status")
@version_option
@data_option
def es_status(version: str, data: Path | None) -> None:
    """Say whether the embedded Elasticsearch or OpenSearch is up, where, and its version."""
    s = embedded.cluster_status(data or embedded.default_data_dir(version))
    if s.is_up:
        click.echo(f"up {s.url} nodes={s.nodes} version={s.version} pids={','.join(map(str, s.pids))}")
    else:
        click.echo("down")

"""`atlas setup`, `simulate` and `ingest`: the result indices, and data into the source index."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from atlas import es_client, indices, simulate
from atlas.cli_support import (
    CliContext,
    echo_json,
    output_path,
    parse_at,
    parse_duration_arg,
    progress_bar,
    write_target,
)
from atlas.ingest import collectd_csv, collectd_http, csv_file, load, rrd_file
from atlas.settings import Settings

log = logging.getLogger("atlas")


@click.command()
@click.pass_obj
def setup(obj: CliContext) -> None:
    """Create the result index templates and indices (idempotent)."""
    settings = obj.settings()
    client = es_client.connect(settings.es)
    echo_json({"indices": indices.setup_indices(client, settings)})


@click.command("simulate")
@click.option("--scenario", type=click.Choice(simulate.SCENARIOS), default="blog", show_default=True)
@click.option("--metrics", default=5, show_default=True)
@click.option("--queries", default=100, show_default=True)
@click.option("--nodes", default=3, show_default=True)
@click.option("--hours", default=600, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--distribution", type=click.Choice(["normal", "lognormal"]), default="normal", show_default=True)
@click.option("--start", default="2024-01-01T00:00:00Z", show_default=True, help="timestamp of hour 0 (UTC)")
@click.option("--index", help="index to write [default: source.index]")
@click.option("--truth", type=click.Path(path_type=Path, dir_okay=False), help="write labelled intervals (CSV)")
@click.pass_obj
def simulate_command(obj: CliContext, /, truth: Path | None, index: str | None, start: str, **scale: Any) -> None:
    """Write the blog's simulated metrics (and their ground truth) into Elasticsearch."""
    settings = obj.settings()
    spec = simulate.SimulationSpec(start=parse_at(start, "--start"), **scale)
    target = write_target(settings, index)
    if truth is not None:
        output_path(truth, "--truth")
        simulate.write_truth_csv(simulate.truth_intervals(spec), truth)
    client = es_client.connect(settings.es)
    with progress_bar(simulate.count_documents(spec), "simulate") as advance:
        report = load.load_documents(
            client,
            settings.source,
            target,
            simulate.simulate_documents(spec),
            extra_keywords=["node"],
            progress=advance,
        )
    echo_json(report.summary() | ({"truth": str(truth)} if truth else {}))


@click.group()
def ingest() -> None:
    """Import real metrics."""


@ingest.command("csv")
# No click checks on FILE: a directory or an unreadable file is one `Error:` line from the reader, not usage text.
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option("--skip-bad", is_flag=True, help="skip and count bad rows (the first few are named) instead of failing")
@click.option("--index", help="index to write [default: source.index]")
@click.pass_obj
def ingest_csv(obj: CliContext, files: tuple[Path, ...], skip_bad: bool, index: str | None) -> None:
    """Import CSV files with columns timestamp,metric,series,value (ISO-8601 or epoch seconds); every file is
    checked whole before the first document is written."""
    settings = obj.settings()
    target = write_target(settings, index)
    with csv_file.check_csv_files(files, skip_bad=skip_bad) as checked:
        import_checked(settings, target, checked)


@ingest.command("rrd")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option("--index", help="index to write [default: source.index]")
@click.pass_obj
def ingest_rrd(obj: CliContext, files: tuple[Path, ...], index: str | None) -> None:
    """Import RRDtool files laid out as collectd writes them (<host>/<plugin>/<type>.rrd), every data source and
    consolidation function at its finest resolution; every file is read whole before the first document is written."""
    settings = obj.settings()
    target = write_target(settings, index)
    import_checked(settings, target, rrd_file.check_rrd_files(files))


@ingest.command("collectd")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, readable=False))
@click.option("--listen", metavar="HOST:PORT", help="receive collectd's write_http JSON posts here instead")
@click.option("--duration", help="with --listen: stop after this long (e.g. 10m) [default: until Ctrl-C]")
@click.option("--index", help="index to write [default: source.index]")
@click.pass_obj
def ingest_collectd(
    obj: CliContext, paths: tuple[Path, ...], listen: str | None, duration: str | None, index: str | None
) -> None:
    """Import what collectd's csv plugin writes: its DataDir (or any folder or file under it), files named
    <host>/<plugin>[-<pi>]/<type>[-<ti>]-YYYY-MM-DD, each checked whole before the first document is written; or,
    with --listen, receive its write_http plugin's JSON posts until --duration or Ctrl-C."""
    settings = obj.settings()
    target = write_target(settings, index)
    if (listen is None) == (not paths) or (duration is not None and listen is None):
        raise click.UsageError("name the csv plugin's DataDir (or files under it), or --listen HOST:PORT [--duration]")
    if listen is None:
        import_checked(settings, target, collectd_csv.check_collectd_csv(paths))
    else:
        address, stop_after = collectd_http.parse_address(listen), parse_duration_arg(duration, "--duration")
        client = es_client.connect(settings.es)
        report = collectd_http.receive(
            client, settings.source, target, address, duration=stop_after,
            ready=lambda at: log.info("listening on http://%s/", at),
        )  # fmt: skip
        echo_json(report.summary())


def import_checked(settings: Settings, target: str, checked: load.CheckedSamples) -> None:
    """Index checked input files into `target` with a progress bar; print the import's summary."""
    for note in checked.notes():
        log.warning("%s", note)
    client = es_client.connect(settings.es)
    with progress_bar(checked.rows, "ingest") as advance:
        report = load.import_samples(client, settings.source, target, checked, progress=advance)
    echo_json(report.summary())

"""The `atlas` command line: parse options, load settings, call the library, print the result."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from atlas import demo, embedded, es_client, evaluate, indices, listing, pipeline, results, simulate
from atlas.clock import floor_instant, now_utc, parse_instant
from atlas.distributions import DEFAULT_VERSION, DISTRIBUTIONS
from atlas.errors import AtlasError, ConfigError, OutputError
from atlas.ingest import csv_file, load, rrd_file
from atlas.outputs import kibana as kibana_objects
from atlas.outputs import report, timelion
from atlas.outputs import watch as outputs_watch
from atlas.queries import build_surprise_request
from atlas.settings import Settings, effective_settings, load_settings, render_config_file
from atlas.surprise import resolve_metrics
from atlas.threshold import group_events

log = logging.getLogger("atlas")
DEFAULT_CONFIG = Path("atlas.yml")


@dataclass(frozen=True)
class CliContext:
    config: Path | None
    es_url: str | None
    verbose: bool

    def settings(self) -> Settings:
        path = self.config if self.config is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
        overrides = {"es.urls": self.es_url.split(",")} if self.es_url else {}
        return load_settings(path, overrides)


def echo_json(data: Any) -> None:
    """Data goes to stdout as JSON: sorted keys, 2-space indent, a final newline."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))


@contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr, drawn from the first advance on (a command that fails before any work prints only
    its error line); yields the callback that advances it."""
    with ExitStack() as stack:
        bars: list[Any] = []

        def advance(n: int) -> None:
            if not bars:
                bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)
                bars.append(stack.enter_context(bar))
            bars[0].update(n)

        yield advance


def output_path(path: Path, option: str, *, is_dir: bool = False) -> Path:
    """Refuse, before any work, an output that cannot be written: its directory must exist (a directory output may
    be created, if its parent exists)."""
    parent = path if is_dir and path.exists() else path.parent
    if is_dir and path.exists() and not path.is_dir():
        raise ConfigError(f"{option}: {path} exists and is not a directory")
    if not is_dir and path.is_dir():
        raise ConfigError(f"{option}: {path} is a directory; name a file")
    anchor = parent if parent.exists() or not is_dir else parent.parent
    if not anchor.is_dir():
        raise ConfigError(f"{option}: the directory {anchor} does not exist")
    if not os.access(anchor, os.W_OK):
        raise ConfigError(f"{option}: the directory {anchor} is not writable")
    return path


def concrete_index(index: str, option: str) -> str:
    """An index to write to: one concrete, valid index name (checked before any work)."""
    if any(c in index for c in "*,?"):
        raise ConfigError(f"{option}: {index!r} is a pattern; name one concrete index to write to")
    return load.check_index_name(index, option)


class StderrHandler(logging.Handler):
    """Log records go to whatever stderr click writes to now (so progress and warnings stay off stdout)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


class AtlasGroup(click.Group):
    """The top-level group: an AtlasError from any command becomes `Error: <message>` and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AtlasError as exc:
            click.echo(f"Error: {exc}", err=True)
            obj = ctx.find_object(CliContext)
            cause = exc.__cause__
            while obj is not None and obj.verbose and cause is not None:
                click.echo(f"  caused by: {type(cause).__name__}: {cause}", err=True)
                cause = cause.__cause__
            raise click.exceptions.Exit(exc.exit_code) from exc


@click.group(cls=AtlasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="ATLAS_CONFIG",
    help="configuration file [default: ./atlas.yml if present]",
)
@click.option("--es-url", envvar="ATLAS_ES_URL", help="Elasticsearch URL(s), comma-separated (overrides es.urls)")
@click.option("-v", "--verbose", is_flag=True, help="show the cause chain of errors and debug logging")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, es_url: str | None, verbose: bool) -> None:
    """atlas: Elasticsearch watches thousands of metric series for disruptions."""
    root = logging.getLogger()
    if not any(isinstance(h, StderrHandler) for h in root.handlers):
        root.addHandler(StderrHandler())
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("elastic_transport", "elasticsearch"):  # their retries are our one error line
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.ERROR)
    ctx.obj = CliContext(config=config, es_url=es_url, verbose=verbose)


# ---- atlas es ---------------------------------------------------------------------------------------------
@cli.group()
def es() -> None:
    """The embedded Elasticsearch for trying and testing (Elastic's own distributions, fetched with mvn)."""


version_option = click.option(
    "--version",
    "version",
    type=click.Choice(list(DISTRIBUTIONS)),
    default=DEFAULT_VERSION,
    show_default=True,
    help="Elasticsearch version: 7.10.2 runs everything; 6.8.23 has Watcher and security; 8.19.9 has no scripts",
)
data_option = click.option(
    "--data",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="directory for node data, logs and the pid files [default: $ATLAS_HOME/es, es-<version> for others]",
)


@es.command("start")
@click.option("--nodes", default=1, show_default=True, help="number of nodes of the local cluster")
@click.option("--port", default=9250, show_default=True, help="HTTP port of the first node (node n: port + n)")
@click.option("--heap", default="1g", show_default=True, help="JVM heap of each node")
@version_option
@data_option
def es_start(nodes: int, port: int, heap: str, version: str, data: Path | None) -> None:
    """Start the embedded Elasticsearch (idempotent) and print its URL."""
    status, already = embedded.start_cluster(
        data_dir=data or embedded.default_data_dir(version),
        dist_dir=embedded.default_home() / "dist",
        nodes=nodes,
        port=port,
        heap=heap,
        version=version,
    )
    log.info(
        "%s %d node(s), Elasticsearch %s", "already running:" if already else "started", status.nodes, status.version
    )
    click.echo(status.url)


@es.command("stop")
@version_option
@data_option
def es_stop(version: str, data: Path | None) -> None:
    """Stop the embedded Elasticsearch started from --data (only those processes)."""
    pids = embedded.stop_cluster(data or embedded.default_data_dir(version))
    click.echo(f"stopped pids {' '.join(map(str, pids))}" if pids else "not running")


@es.command("status")
@version_option
@data_option
def es_status(version: str, data: Path | None) -> None:
    """Say whether the embedded Elasticsearch is up, where, and its version."""
    s = embedded.cluster_status(data or embedded.default_data_dir(version))
    if s.is_up:
        click.echo(f"up {s.url} nodes={s.nodes} version={s.version} pids={','.join(map(str, s.pids))}")
    else:
        click.echo("down")


# ---- configuration ----------------------------------------------------------------------------------------
@cli.command()
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=DEFAULT_CONFIG, show_default=True)
@click.option("--force", is_flag=True, help="overwrite an existing file")
def init(out: Path, force: bool) -> None:
    """Write a commented atlas.yml with every setting at its default."""
    if out.exists() and not force:
        raise ConfigError(f"{out} exists; use --force to overwrite it")
    output_path(out, "--out").write_text(render_config_file(), encoding="utf-8")
    click.echo(str(out))


@cli.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@click.pass_obj
def config_show(obj: CliContext) -> None:
    """Print the effective settings (file + environment + options), secrets masked."""
    echo_json(effective_settings(obj.settings()))


# ---- Elasticsearch setup and data in ---------------------------------------------------------------------
@cli.command()
@click.pass_obj
def setup(obj: CliContext) -> None:
    """Create the result index templates and indices (idempotent)."""
    settings = obj.settings()
    client = es_client.connect(settings.es)
    echo_json({"indices": indices.setup_indices(client, settings)})


@cli.command("simulate")
@click.option("--scenario", type=click.Choice(["blog", "none"]), default="blog", show_default=True)
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
    try:
        started = parse_instant(start)
    except ValueError as exc:
        raise ConfigError(f"--start: {start!r} is not an ISO-8601 instant") from exc
    spec = simulate.SimulationSpec(start=started, **scale)
    target = concrete_index(index or settings.source.index, "--index")
    if truth is not None:
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


@cli.group()
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
    option = "--index" if index is not None else "source.index"
    target = load.check_index_name(index if index is not None else settings.source.index, option)
    with csv_file.check_csv_files(files, skip_bad=skip_bad) as checked:
        for note in checked.notes():
            log.warning("%s", note)
        client = es_client.connect(settings.es)
        with progress_bar(checked.rows, "ingest") as advance:
            report = load.import_csv(client, settings.source, target, checked, progress=advance)
    echo_json(report.summary())


@ingest.command("rrd")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option("--index", help="index to write [default: source.index]")
@click.pass_obj
def ingest_rrd(obj: CliContext, files: tuple[Path, ...], index: str | None) -> None:
    """Import RRDtool files laid out as collectd writes them (<host>/<plugin>/<type>.rrd), every data source and
    consolidation function at its finest resolution; every file is read whole before the first document is written."""
    settings = obj.settings()
    option = "--index" if index is not None else "source.index"
    target = load.check_index_name(index if index is not None else settings.source.index, option)
    checked = rrd_file.check_rrd_files(files)
    for note in checked.notes():
        log.warning("%s", note)
    client = es_client.connect(settings.es)
    with progress_bar(checked.rows, "ingest") as advance:
        report = load.import_csv(client, settings.source, target, checked, progress=advance)
    echo_json(report.summary())


def parse_at(value: str | None, option: str = "--at") -> Any:
    """An ISO-8601 option value as tz-aware UTC, or now when not given."""
    if value is None:
        return now_utc()
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise ConfigError(f"{option}: {value!r} is not an ISO-8601 instant") from exc


@cli.command("query")
@click.option("--at", help="window end (ISO-8601, UTC) [default: the latest complete window]")
@click.option("--metric", "metrics", multiple=True, help="metric to include [default: source.metrics]")
@click.pass_obj
def query_command(obj: CliContext, at: str | None, metrics: tuple[str, ...]) -> None:
    """Print the pipeline aggregation for one window, ready for Kibana Dev Tools (no network)."""
    settings = obj.settings()
    names = list(metrics or settings.source.metrics or settings.source.value_fields)
    if not names:
        raise ConfigError("--metric: name at least one metric (or set source.metrics); atlas query does not connect")
    end = floor_instant(
        parse_at(at) - (settings.source.ingest_delay if at is None else timedelta(0)), settings.surprise.step
    )
    request = build_surprise_request(settings, names, end)
    click.echo(f"# GET {settings.source.index}/_search?filter_path={request.filter_path}", err=True)
    echo_json(request.body)


@cli.command("run")
@click.option("--at", help="act as if now were this instant (ISO-8601, UTC)")
@click.option("--dry-run", is_flag=True, help="compute and print, write nothing")
@click.pass_obj
def run_command(obj: CliContext, at: str | None, dry_run: bool) -> None:
    """The hourly job: every complete window since the last one done, write-back, threshold."""
    settings = obj.settings()
    client = es_client.connect(settings.es)
    result = pipeline.run_once(settings, client, parse_at(at), dry_run=dry_run)
    echo_json(result.summary())
    failed = [f"{d.channel} ({d.metric}): {d.reason}" for d in result.deliveries if not d.sent]
    if failed:  # the results are written; only notifications failed
        raise OutputError("notifications failed: " + "; ".join(failed))


@cli.command("backfill")
@click.option("--from", "start", required=True, help="first window end (ISO-8601, UTC)")
@click.option("--to", "end", required=True, help="last window end (ISO-8601, UTC)")
@click.pass_obj
def backfill_command(obj: CliContext, start: str, end: str) -> None:
    """Recompute every window ending in [--from, --to], with a progress bar."""
    settings = obj.settings()
    first, last = parse_at(start, "--from"), parse_at(end, "--to")
    client = es_client.connect(settings.es)
    with progress_bar(max(0, (last - first) // settings.surprise.step + 1), "backfill") as advance:
        result = pipeline.backfill(settings, client, first, last, progress=advance)
    echo_json(result.summary() | {"events": len(result.events)})


@cli.command("anomalies")
@click.option("--from", "start", help="first window end (ISO-8601, UTC) [default: 7 days ago]")
@click.option("--to", "end", help="last window end (ISO-8601, UTC) [default: now]")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.pass_obj
def anomalies_command(obj: CliContext, start: str | None, end: str | None, fmt: str) -> None:
    """List anomaly events."""
    settings = obj.settings()
    last = parse_at(end, "--to")
    first = parse_at(start, "--from") if start else last - timedelta(days=7)
    found = results.read_anomalies(es_client.connect(settings.es), settings, first, last)
    rows = listing.event_rows(group_events(found, settings.surprise.step), found)
    if fmt == "json":
        echo_json(rows)
    else:
        click.echo(listing.format_table(rows) if fmt == "table" else listing.format_csv(rows), nl=False)


@cli.command("evaluate")
@click.option("--truth", required=True, type=click.Path(path_type=Path, dir_okay=False), help="start,end[,metric] CSV")
@click.option("--from", "start", default="1970-01-01T00:00:00Z", help="first window end (ISO-8601, UTC)")
@click.option("--to", "end", help="last window end (ISO-8601, UTC) [default: now]")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_obj
def evaluate_command(obj: CliContext, truth: Path, start: str, end: str | None, fmt: str) -> None:
    """Precision, recall and F1 of the stored anomalies against labelled intervals."""
    settings = obj.settings()
    intervals = evaluate.read_truth(truth)
    client = es_client.connect(settings.es)
    scores = pipeline.evaluate_job(settings, client, intervals, parse_at(start, "--from"), parse_at(end, "--to"))
    if fmt == "json":
        echo_json(evaluate.evaluation_json(scores))
    else:
        click.echo(evaluate.format_evaluation(scores), nl=False)


@cli.command("demo")
@click.option("--queries", default=50, show_default=True, help="series per metric of the simulated data")
@click.option("--nodes", default=2, show_default=True, help="simulated nodes (documents per series and hour)")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("atlas-demo"), show_default=True)
@click.pass_obj
def demo_command(obj: CliContext, queries: int, nodes: int, seed: int, out: Path) -> None:
    """Everything end to end on the embedded Elasticsearch: simulate, backfill, evaluate, list anomalies."""
    status, _ = embedded.start_cluster(
        data_dir=embedded.default_home() / "es", dist_dir=embedded.default_home() / "dist"
    )
    settings = demo.demo_settings(status.url, obj.config)
    spec = simulate.SimulationSpec(metrics=5, queries=queries, nodes=nodes, hours=600, seed=seed)
    result = demo.run_demo(settings, spec, out, progress_bar)
    click.echo(evaluate.format_evaluation(result.scores))
    click.echo(listing.format_table(result.events), nl=False)
    log.info("demo indices %s and %s-*; truth %s", demo.DEMO_INDEX, demo.DEMO_PREFIX, result.truth_path)
    for path in result.artifacts:
        click.echo(f"wrote {path}")


# ---- Watcher, Kibana, report --------------------------------------------------------------------------------
@cli.group()
def watch() -> None:
    """Watcher watches computing the threshold inside Elasticsearch."""


@watch.command("render")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("watches"), show_default=True)
@click.pass_obj
def watch_render(obj: CliContext, out: Path) -> None:
    """Write the job's watch as JSON, ready for PUT _watcher/watch/<id>."""
    for path in outputs_watch.write_watches(obj.settings(), output_path(out, "--out", is_dir=True)):
        click.echo(str(path))


@watch.command("install")
@click.pass_obj
def watch_install(obj: CliContext) -> None:
    """PUT the job's watch into Elasticsearch."""
    settings = obj.settings()
    click.echo(outputs_watch.install_watch(es_client.connect(settings.es), settings))


@watch.command("execute")
@click.option("--at", help="trigger time (ISO-8601, UTC) [default: now]")
@click.option("--send", is_flag=True, help="with Watcher: send the actions for real (default: simulate them)")
@click.pass_obj
def watch_execute(obj: CliContext, at: str | None, send: bool) -> None:
    """Run the watch once: by the cluster's Watcher (the installed watch) when it has one, else evaluated by atlas
    (its search on the live cluster, its condition, its rendered actions); nothing is sent without --send."""
    settings = obj.settings()
    run = outputs_watch.execute_once(es_client.connect(settings.es), settings, parse_at(at), send=send)
    echo_json(
        {
            "watch": run.watch_id,
            "executed_by": run.executed_by,
            "condition_met": run.condition_met,
            "flagged_metrics": run.flagged_metrics,
            "actions": run.actions,
            "action_status": run.action_status,
        }
    )


@cli.command("timelion")
@click.option("--metric", "metrics", multiple=True, help="metric [default: every metric of the source]")
@click.pass_obj
def timelion_command(obj: CliContext, metrics: tuple[str, ...]) -> None:
    """Print the Timelion expression of each metric and percentile."""
    settings = obj.settings()
    names = list(metrics) or resolve_metrics(es_client.connect(settings.es), settings)
    for chart in timelion.timelion_expressions(settings, names):
        click.echo(f"# {chart.metric} p{chart.percentile:g}\n{chart.expression}")


@cli.group()
def kibana() -> None:
    """Kibana saved objects: Timelion charts and a dashboard."""


@kibana.command("export")
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("atlas-kibana.ndjson"), show_default=True
)
@click.pass_obj
def kibana_export(obj: CliContext, out: Path) -> None:
    """Write the saved-objects NDJSON (a chart per metric, ground truth when indexed, a dashboard)."""
    settings = obj.settings()
    output_path(out, "--out")
    client = es_client.connect(settings.es)
    with_truth = es_client.index_exists(client, indices.result_indices(settings.results).truth)
    out.write_text(kibana_objects.export_saved_objects(settings, resolve_metrics(client, settings), with_truth))
    click.echo(str(out))


@kibana.command("import")
@click.option("--file", "path", type=click.Path(path_type=Path, dir_okay=False), default=Path("atlas-kibana.ndjson"))
@click.option("--kibana-url", help="Kibana URL [default: kibana.url]")
@click.pass_obj
def kibana_import(obj: CliContext, path: Path, kibana_url: str | None) -> None:
    """POST the NDJSON to Kibana's saved-objects import (overwriting atlas's own objects)."""
    settings = obj.settings()
    url = kibana_url or settings.kibana.url
    echo_json(kibana_objects.import_saved_objects(path.read_text(), url, settings.kibana.space))


@cli.command("report")
@click.option("--from", "start", help="first window end (ISO-8601, UTC) [default: 7 days before --to]")
@click.option("--to", "end", help="last window end (ISO-8601, UTC) [default: now]")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=Path("report.html"), show_default=True)
@click.option("--png", type=click.Path(path_type=Path, dir_okay=False), help="also a screenshot (needs chromium)")
@click.option("--truth", type=click.Path(path_type=Path, dir_okay=False), help="labelled intervals to shade")
@click.pass_obj
def report_command(
    obj: CliContext, start: str | None, end: str | None, out: Path, png: Path | None, truth: Path | None
) -> None:
    """Write a self-contained HTML (and PNG) report of surprise, thresholds and anomalies."""
    settings = obj.settings()
    last = parse_at(end, "--to")
    first = parse_at(start, "--from") if start else last - timedelta(days=7)
    if first > last:
        raise ConfigError(f"--from {start} is after --to {end or 'now'}")
    for path, option in ((out, "--out"), *(((png, "--png"),) if png else ())):
        output_path(path, option)
    known = evaluate.read_truth(truth) if truth else []
    data = pipeline.report_data(settings, es_client.connect(settings.es), first, last, known)
    report.write_report(data, out, png)
    click.echo(str(out) + (f"\n{png}" if png else ""))


def main() -> None:
    """Run the CLI and exit with its code: 0 done, 1 failed while running, 2 bad input, 130 interrupted."""
    try:
        code = cli.main(standalone_mode=False)  # returns the code of an Exit raised inside, else None
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("Aborted.", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)

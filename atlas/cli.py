"""The `atlas` command line: parse options, load settings, call the library, print the result."""

from __future__ import annotations

import json
import logging
import signal
import sys
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from atlas import (
    __version__,
    demo,
    embedded,
    es_client,
    evaluate,
    files,
    findings,
    grouping,
    job,
    listing,
    masking,
    presets,
    simulate,
)
from atlas.cli_data import ingest, setup, simulate_command
from atlas.cli_es import es
from atlas.cli_outputs import kibana, report_command, timelion_command, watch
from atlas.cli_support import (
    DEFAULT_CONFIG,
    CliContext,
    api_version_of,
    echo_json,
    output_path,
    parse_at,
    parse_duration_arg,
    progress_bar,
    server_version_option,
    split_assignments,
)
from atlas.clock import floor_instant, now_utc
from atlas.distributions import DEFAULT_VERSION
from atlas.errors import AtlasError, ConfigError, OutputError
from atlas.masking import mask
from atlas.queries import build_surprise_request
from atlas.settings_text import effective_settings, render_config_file

log = logging.getLogger("atlas")


class StderrHandler(logging.Handler):
    """Log records go to whatever stderr click writes to now (so progress and warnings stay off stdout), one line
    each and masked: the Elasticsearch client's and urllib3's records under -v name URLs too, and the exception a
    record carries is shown by its type and text (the error's cause chain says the rest), not its traceback."""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
        click.echo(mask(text), err=True)


class AtlasGroup(click.Group):
    """The top-level group: an AtlasError from any command becomes `Error: <message>` and its exit code; click's own
    usage errors are masked too (they quote a bad value or an extra argument as given)."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            _mask_message(exc)
            raise

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, split_assignments(args))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            _mask_message(exc)
            raise
        except AtlasError as exc:
            click.echo(mask(f"Error: {exc}"), err=True)
            obj = ctx.find_object(CliContext)
            cause = exc.__cause__
            while obj is not None and obj.verbose and cause is not None:
                click.echo(mask(f"  caused by: {type(cause).__name__}: {cause}"), err=True)
                cause = cause.__cause__
            raise click.exceptions.Exit(exc.exit_code) from exc


def _mask_message(exc: click.ClickException) -> None:
    vars(exc)["message"] = mask(exc.message)  # click declares it final; its text is what show() prints


@click.group(cls=AtlasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="ATLAS_CONFIG",
    help="configuration file [default: ./atlas.yml if present]",
)
@click.option("--es-url", envvar="ATLAS_ES_URL", help="Elasticsearch URL(s), comma-separated (overrides es.urls)")
@click.option(
    "-s",
    "--set",
    "assignments",
    nargs=2,
    multiple=True,
    metavar="KEY VALUE",
    help="override a setting after file and environment, e.g. -s threshold.sigmas 4 (or KEY=VALUE); repeatable",
)
@click.option("-v", "--verbose", is_flag=True, help="show the cause chain of errors and debug logging")
@click.version_option(
    __version__, "--version", prog_name="atlas", message="%(prog)s %(version)s", help="show the version and exit"
)
@click.pass_context
def cli(
    ctx: click.Context,
    config: Path | None,
    es_url: str | None,
    assignments: tuple[tuple[str, str], ...],
    verbose: bool,
) -> None:
    """atlas: Elasticsearch watches thousands of metric series for disruptions."""
    masking.forget()  # secrets are remembered as this command line's settings load
    root = logging.getLogger()
    if not any(isinstance(h, StderrHandler) for h in root.handlers):
        root.addHandler(StderrHandler())
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("elastic_transport", "elasticsearch"):  # their retries are our one error line
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.ERROR)
    ctx.obj = CliContext(config=config, es_url=es_url, verbose=verbose, assignments=assignments)


# ---- configuration ----------------------------------------------------------------------------------------
@cli.command()
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=DEFAULT_CONFIG, show_default=True)
@click.option("--force", is_flag=True, help="overwrite an existing file")
@click.option(
    "--preset",
    type=click.Choice(presets.PRESETS),
    default="hourly",
    show_default=True,
    help="hourly: the blog's setting (atlas's defaults); hosts: one metric per host, its columns as series",
)
@click.option("--interval", help="bucket size, e.g. 1m or 5m (the data's resolution)  [default: the preset's]")
def init(out: Path, force: bool, preset: presets.Preset, interval: str | None) -> None:
    """Write a commented atlas.yml with every setting at its default, or at a preset's values."""
    if files.is_replaceable(out) and not force:
        raise ConfigError(f"{out} exists; use --force to overwrite it")
    text = render_config_file(presets.preset_overrides(preset, parse_duration_arg(interval, "--interval")))
    files.write_output(output_path(out, "--out"), text, "--out")
    click.echo(str(out))


@cli.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@click.pass_obj
def config_show(obj: CliContext) -> None:
    """Print the effective settings (file + environment + options), secrets masked."""
    echo_json(effective_settings(obj.settings()))


@cli.command("query")
@click.option("--at", help="window end (ISO-8601, UTC) [default: the latest complete window]")
@click.option("--metric", "metrics", multiple=True, help="metric to include [default: source.metrics]")
@server_version_option("before 7.4 (no moving_fn shift) the surprise takes two steps")
@click.pass_obj
def query_command(obj: CliContext, at: str | None, metrics: tuple[str, ...], server_version: str) -> None:
    """Print the pipeline aggregation for one window, ready for Kibana Dev Tools (no network)."""
    api_version = api_version_of(server_version)
    settings = obj.settings()
    names = list(metrics or settings.source.metrics or settings.source.value_fields)
    if not names:
        raise ConfigError("--metric: name at least one metric (or set source.metrics); atlas query does not connect")
    end = floor_instant(
        parse_at(at) - (settings.source.ingest_delay if at is None else timedelta(0)), settings.surprise.step
    )
    request = build_surprise_request(settings, names, end, api_version=api_version)
    click.echo(f"# GET {settings.source.index}/_search?filter_path={request.filter_path}", err=True)
    click.echo(json.dumps(request.body, indent=2))  # in the template's order: pipeline aggregations run in it


@cli.command("run")
@click.option("--at", help="act as if now were this instant (ISO-8601, UTC)")
@click.option("--dry-run", is_flag=True, help="compute and print, write nothing")
@click.pass_obj
def run_command(obj: CliContext, at: str | None, dry_run: bool) -> None:
    """The hourly job: every complete window since the last one done, write-back, threshold."""
    settings = obj.settings()
    client = es_client.connect(settings.es)
    started = now_utc()
    result = job.run_once(settings, client, parse_at(at), dry_run=dry_run)
    late = job.schedule_warning(settings, result, now_utc() - started)
    if late:
        log.warning("%s", late)
    echo_json(result.summary())
    failed = [f"{d.channel} ({d.group}): {d.reason}" for d in result.deliveries if not d.sent]
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
        result = job.backfill(settings, client, first, last, progress=advance)
    echo_json(result.summary() | {"events": len(result.events)})


@cli.command("anomalies")
@click.option("--from", "start", help="first window end (ISO-8601, UTC) [default: 7 days ago]")
@click.option("--to", "end", help="last window end (ISO-8601, UTC) [default: now]")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--grouped", is_flag=True, help="one row per grouped event (by grouping.field, else across metrics)")
@click.option("--group-by", "group_by", help="group by this series field (implies --grouped) [default: grouping.field]")
@click.pass_obj
def anomalies_command(
    obj: CliContext, start: str | None, end: str | None, fmt: str, grouped: bool, group_by: str | None
) -> None:
    """List anomaly events with score, actual, typical, threshold and influencers, or grouped events."""
    settings = obj.settings()
    last = parse_at(end, "--to")
    first = parse_at(start, "--from") if start else last - timedelta(days=7)
    client = es_client.connect(settings.es)
    found = findings.read_findings(settings, client, first, last, group_by if grouped else group_by or None)
    if grouped or group_by:
        rows = listing.group_rows(found.groups)
    else:
        rows = listing.event_rows(grouping.event_members(found.events, found.anomalies, settings.source.series_fields))
    if fmt == "json":
        echo_json(rows)
    else:
        text = listing.format_table(rows) if fmt == "table" else listing.format_csv(rows, bool(grouped or group_by))
        click.echo(text, nl=False)


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
    scores = findings.evaluate_job(settings, client, intervals, parse_at(start, "--from"), parse_at(end, "--to"))
    if fmt == "json":
        echo_json(evaluate.evaluation_json(scores))
    else:
        click.echo(evaluate.format_evaluation(scores), nl=False)


@cli.command("demo")
@click.option("--queries", default=50, show_default=True, help="series per metric of the simulated data")
@click.option("--nodes", default=2, show_default=True, help="simulated nodes (documents per series and hour)")
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("atlas-demo"), show_default=True)
@click.option(
    "--version",
    type=click.Choice(["7.10.2", "opensearch-2.19.6"]),
    default=DEFAULT_VERSION,
    show_default=True,
    help="the embedded server it starts and runs on (as `atlas es start --version`)",
)
@click.pass_obj
def demo_command(obj: CliContext, queries: int, nodes: int, seed: int, out: Path, version: str) -> None:
    """Everything end to end on the embedded Elasticsearch (or OpenSearch): simulate, backfill, evaluate, list
    anomalies."""
    spec = simulate.SimulationSpec(metrics=5, queries=queries, nodes=nodes, hours=600, seed=seed)
    simulate.validate_spec(spec)  # before a node is started for it
    status, _ = embedded.start_cluster(
        data_dir=embedded.default_data_dir(version), dist_dir=embedded.default_home() / "dist", version=version
    )
    settings = demo.demo_settings(status.url, obj.config)
    result = demo.run_demo(settings, spec, out, progress_bar)
    click.echo(evaluate.format_evaluation(result.scores))
    click.echo(listing.format_table(result.events), nl=False)
    log.info("demo indices %s and %s-*; truth %s", demo.DEMO_INDEX, demo.DEMO_PREFIX, result.truth_path)
    for path in result.artifacts:
        click.echo(f"wrote {path}")


for command in (setup, simulate_command, ingest, es, watch, timelion_command, kibana, report_command):
    cli.add_command(command)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a service manager's or `kill`'s stop): unwinds like Ctrl-C, so that every `finally` and
    `except BaseException` that gives a lease back or stops an import runs."""


def _terminate(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the cleanup of the first
    raise Terminated()


def main() -> None:
    """Run the CLI and exit with its code: 0 done, 1 failed while running, 2 bad input, 130 interrupted (Ctrl-C),
    143 terminated (SIGTERM)."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = cli.main(standalone_mode=False)  # returns the code of an Exit raised inside, else None
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        terminated = isinstance(exc, Terminated) or isinstance(exc.__cause__ or exc.__context__, Terminated)
        click.echo("Terminated (SIGTERM)." if terminated else "Aborted.", err=True)
        sys.exit(143 if terminated else 130)
    except Exception:  # a bug: its traceback shows, as Python would print it, with the secrets in it masked
        click.echo(mask(traceback.format_exc()), err=True, nl=False)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)

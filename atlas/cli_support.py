"""What the `atlas` commands share: the command context, JSON output, progress bars, option checks."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from atlas import files
from atlas.clock import now_utc, parse_duration, parse_instant
from atlas.distributions import DEFAULT_VERSION
from atlas.errors import ConfigError
from atlas.es_server import ApiVersion, parse_server
from atlas.ingest import load
from atlas.settings import Settings, load_settings
from atlas.settings_text import parse_assignments

DEFAULT_CONFIG = Path("atlas.yml")


@dataclass(frozen=True)
class CliContext:
    config: Path | None
    es_url: str | None
    verbose: bool
    assignments: tuple[tuple[str, str], ...] = ()  # -s/--set KEY VALUE, in command-line order

    def settings(self, overrides: Mapping[str, Any] | None = None) -> Settings:
        """The file, then the environment, then --es-url, then a command's own `overrides`, then each --set (the last
        one of a key wins)."""
        path = self.config if self.config is not None else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
        given = {"es.urls": self.es_url.split(",")} if self.es_url else {}
        return load_settings(path, given | dict(overrides or {}) | parse_assignments(self.assignments))


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
    """Refuse, before any work, an output that cannot be written (files.check_output)."""
    return files.check_output(path, option, is_dir=is_dir)


def write_target(settings: Settings, index: str | None) -> str:
    """The index a command writes to: --index, else source.index; one concrete, valid name (checked before any work)."""
    option = "--index" if index is not None else "source.index"
    return load.check_index_name(index if index is not None else settings.source.index, option)


def parse_duration_arg(value: str | None, option: str) -> timedelta | None:
    """A positive duration option (`30s`, `5m`, `1h`), None when not given."""
    if value is None:
        return None
    try:
        duration = parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from None
    if duration <= timedelta(0):
        raise ConfigError(f"{option}: {value!r} is not a positive duration")
    return duration


def split_assignments(args: list[str]) -> list[str]:
    """`--set KEY=VALUE`, `-s KEY=VALUE` and `--set=KEY=VALUE` as `--set KEY VALUE`, the form click parses. A KEY
    never holds `=`, so only the word right after -s/--set is split; a VALUE given separately stays whole."""
    out: list[str] = []
    after_option = False
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        if arg.startswith("--set=") and "=" in arg.removeprefix("--set="):
            out += ["--set", *arg.removeprefix("--set=").split("=", 1)]
        elif after_option and "=" in arg:
            out += arg.split("=", 1)
        else:
            out.append(arg)
        after_option = arg in ("-s", "--set")
    return out


def server_version_option(purpose: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--server-version`, the Elasticsearch version (or opensearch-<version>) a printed request or file is for."""
    return click.option(
        "--server-version",
        default=DEFAULT_VERSION,
        show_default=True,
        help=f"the Elasticsearch version it is for (or opensearch-<version>); {purpose}",
    )


def api_version_of(server_version: str) -> ApiVersion:
    """The API version of a `--server-version` value, or a ConfigError naming the option."""
    server = parse_server(server_version)
    if server is None:
        raise ConfigError(
            f"--server-version: {server_version!r} is not a version like 6.8, 7.10.2 or opensearch-2.19.6"
        )
    return server.api_version


def parse_at(value: str | None, option: str = "--at") -> datetime:
    """An ISO-8601 option value as tz-aware UTC (within clock.EARLIEST to LATEST), or now when not given."""
    if value is None:
        return now_utc()
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from exc

"""Load atlas.yml, environment and command-line overrides into frozen, validated settings."""

from __future__ import annotations

import base64
import dataclasses
import difflib
import logging
import math
import os
import re
import types
import typing
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml

from atlas import files
from atlas.addresses import check_address, check_host, check_webhook
from atlas.clock import LONGEST, format_duration, parse_duration
from atlas.errors import ConfigError, DataError
from atlas.masking import mask, remember, remember_urls

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bounds:
    """The range a number or a duration (or each item of a list of them) must lie in: `low` to `high` inclusive,
    `low` itself excluded when `above`."""

    low: float | timedelta
    high: float | timedelta
    above: bool = False

    def holds(self, value: Any) -> bool:
        return (self.low < value if self.above else self.low <= value) and bool(value <= self.high)

    def describe(self) -> str:
        low, high = (_bound_text(v) for v in (self.low, self.high))
        return f"> {low} and <= {high}" if self.above else f"between {low} and {high}"


def _bound_text(value: float | timedelta) -> str:
    if isinstance(value, timedelta):
        return duration_text(value)
    return str(int(value)) if value == int(value) else f"{value:g}"


def duration_text(value: timedelta) -> str:
    """A duration as a message shows it: long ones in days (3650d, not 87600h)."""
    whole_days = value >= timedelta(days=7) and value % timedelta(days=1) == timedelta(0)
    return f"{value.days}d" if whole_days else format_duration(value) if value else "0s"


DURATION = Bounds(timedelta(0), LONGEST)  # every duration setting unless it says otherwise


def setting(
    default: Any,
    help: str,
    *,
    env: str | None = None,
    secret: bool = False,
    urls: bool = False,
    bounds: Bounds | None = None,
) -> Any:
    """Declare one setting: its default, help text, the range of a number or duration (its items' for a list) and,
    optionally, the environment variable that overrides it.

    A secret is read only from its environment variable, never from the file, and is masked when shown. A setting
    of `urls` holds URL(s) whose credentials are masked wherever they are shown (`atlas.masking`).
    """
    meta = {"help": help, "env": env, "secret": secret, "urls": urls, "bounds": bounds}
    if isinstance(default, (list, dict)):
        frozen = tuple(default) if isinstance(default, list) else types.MappingProxyType(default)
        return field(default_factory=lambda: frozen, metadata=meta)
    return field(default=default, metadata=meta)


_AT_LEAST_1S = Bounds(timedelta(seconds=1), LONGEST)
_SIGMAS = Bounds(0, 1000, above=True)


@dataclass(frozen=True)
class EsSettings:
    urls: tuple[str, ...] = setting(
        ["http://127.0.0.1:9250"],
        "Elasticsearch URL(s); the default is the embedded node",
        env="ATLAS_ES_URL",
        urls=True,
    )
    cloud_id: str | None = setting(None, "Elastic Cloud id, instead of urls", env="ATLAS_ES_CLOUD_ID")
    username: str | None = setting(None, "user for basic authentication", env="ATLAS_ES_USERNAME")
    password: str | None = setting(None, "password for basic authentication", env="ATLAS_ES_PASSWORD", secret=True)
    api_key: str | None = setting(None, "API key (base64 id:key)", env="ATLAS_ES_API_KEY", secret=True)
    ca_certs: str | None = setting(None, "path of a CA certificate bundle (PEM)", env="ATLAS_ES_CA_CERTS")
    verify_certs: bool = setting(True, "verify the server's TLS certificate")
    request_timeout: timedelta = setting(
        timedelta(seconds=60), "timeout of one request", bounds=Bounds(timedelta(seconds=1), timedelta(hours=1))
    )
    max_retries: int = setting(3, "retries of a request on connection errors and timeouts", bounds=Bounds(0, 100))


@dataclass(frozen=True)
class SourceSettings:
    index: str = setting("atlas-metrics", "index or index pattern holding the metric documents")
    time_field: str = setting("@timestamp", "date field of each document")
    metric_field: str = setting("metric", "long form: keyword field naming the metric")
    value_field: str = setting("value", "long form: numeric field holding the value")
    series_fields: tuple[str, ...] = setting(["query"], "keyword field(s) that identify one series of a metric")
    metrics: tuple[str, ...] = setting([], "long form: the metrics to watch; empty = every metric found")
    value_fields: Mapping[str, str] = setting(
        {}, "wide form: metric name -> numeric field (e.g. cpu: system.cpu.total.pct); replaces metric_field"
    )
    filter: Mapping[str, Any] = setting({}, "extra Elasticsearch query (bool filter) on the source documents")
    ingest_delay: timedelta = setting(timedelta(minutes=5), "how late documents may arrive; windows wait for it")


@dataclass(frozen=True)
class SurpriseSettings:
    interval: timedelta = setting(
        timedelta(hours=1), "bucket size of each series (date_histogram fixed_interval)", bounds=_AT_LEAST_1S
    )
    baseline_window: int = setting(
        24, "buckets in the trailing baseline (current bucket excluded)", bounds=Bounds(1, 1000)
    )
    scale_window: int | None = setting(
        None,
        "zscore and gaussian only: buckets in the trailing std that divides the deviation (current bucket excluded),"
        " e.g. a day's while the baseline takes 2 hours; null = baseline_window",
        bounds=Bounds(2, 5_000),  # a week of 5-minute buckets, 3.5 days of 1-minute ones
    )
    baseline: Literal["median", "mean"] = setting(
        "median", "baseline of each bucket: median (a disruption shorter than half the window leaves no trace) or mean"
    )
    season: timedelta | None = setting(None, "seasonal baseline (not implemented yet: must stay null)")
    window: timedelta = setting(
        timedelta(hours=24), "length of the window whose surprise is scored", bounds=_AT_LEAST_1S
    )
    step: timedelta = setting(
        timedelta(hours=1), "how far consecutive windows slide; window ends align to it", bounds=_AT_LEAST_1S
    )
    mode: Literal["max", "last"] = setting("last", "window surprise: its last bucket, or max over the window")
    normalization: Literal["relative", "none", "zscore", "gaussian"] = setting(
        "relative",
        "relative divides surprise by abs(baseline); zscore by the std of the last scale_window buckets; gaussian:"
        " -ln p(x), DADS's density;"
        " none keeps the units",
    )
    percentiles: tuple[float, ...] = setting(
        [90.0, 99.0], "percentiles of window surprise across a metric's series", bounds=Bounds(0, 100, above=True)
    )
    min_tail_series: int = setting(
        5,
        "report percentile p only when n * (1 - p/100) >= this of the n series (the lowest always); 0 = always",
        bounds=Bounds(0, 1_000_000),
    )
    top_series: int = setting(5, "most surprising series named with each result", bounds=Bounds(1, 1000))
    combine_by: str | None = setting(
        None,
        "gaussian only: a keyword field (e.g. node) whose values also get DADS's combined score, the sum over the"
        " metrics of -ln p(x), as the extra metric '<field>:all'",
    )

    @property
    def std_window(self) -> int:
        """Buckets whose population std divides |x - b| (zscore, gaussian): scale_window, else baseline_window."""
        return self.baseline_window if self.scale_window is None else self.scale_window

    @property
    def warm_up_buckets(self) -> int:
        """Buckets fetched before a scored bucket so that its baseline and std see all the values they take."""
        return max(self.baseline_window, self.std_window)

    def reports_percentile(self, percentile: float, series: int) -> bool:
        """Whether P(m, T, p) is reported for a window scored over `series` series: the lowest configured percentile
        always is; a higher one only when at least `min_tail_series` series lie above it, because the order
        statistic of a thinner tail is the noise of one or two series, not a change across the metric."""
        return percentile <= min(self.percentiles) or series * (1 - percentile / 100) >= self.min_tail_series


@dataclass(frozen=True)
class ThresholdSettings:
    window: int = setting(24, "previous points in the moving mean and standard deviation", bounds=Bounds(2, 1000))
    lookback: int = setting(
        72,
        "previous points searched for `window` unflagged ones (flagged points are left out); = window: plain",
        bounds=Bounds(2, 10_000),
    )
    sigmas: float = setting(6.0, "a point is anomalous above mean + sigmas * std", bounds=_SIGMAS)
    min_value: float = setting(
        0.0,
        "absolute floor: a point is anomalous only above max(mean + sigmas * std, min_value); 0 = no floor",
        bounds=Bounds(0, 1_000_000),
    )
    recovery: float = setting(
        0.0,
        "an anomaly event stays open while each next point is at or above this value (hysteresis); 0 = off",
        bounds=Bounds(0, 1_000_000),
    )
    levels: tuple[float, ...] = setting([6.0, 8.0, 10.0], "sigmas for severity low, medium, high", bounds=_SIGMAS)
    min_duration: timedelta = setting(timedelta(hours=1), "shortest anomaly event reported")


@dataclass(frozen=True)
class GroupingSettings:
    """How alerts, the report and `atlas evaluate` group events and rate them (docs/scores-and-grouping.md)."""

    field: str | None = setting(
        None, "series field whose values group events (e.g. node); null: group all metrics at overlapping hours"
    )
    min_share: float = setting(
        0.5, "share of an event's influence a field value needs for the event to join it", bounds=Bounds(0, 1, True)
    )
    score_levels: tuple[float, ...] = setting(
        [50.0, 75.0], "peak scores that each raise criticality one step", bounds=Bounds(0, 100, above=True)
    )
    metric_levels: tuple[int, ...] = setting(
        [2, 3], "metric counts that each raise criticality one step", bounds=Bounds(1, 1_000_000)
    )
    min_durations: tuple[timedelta, ...] = setting(
        [timedelta(hours=1)] * 3, "shortest grouped event reported, for criticality low, medium, high"
    )


@dataclass(frozen=True)
class ResultsSettings:
    job: str = setting("default", "job id; results of different jobs share the indices")
    prefix: str = setting("atlas", "prefix of the result indices (<prefix>-surprise, -anomalies, -state)")
    shards: int = setting(1, "primary shards of each result index", bounds=Bounds(1, 1024))
    replicas: int = setting(0, "replicas of each result index", bounds=Bounds(0, 100))


@dataclass(frozen=True)
class AlertSettings:
    slack_webhook: str | None = setting(None, "Slack incoming-webhook URL", env="ATLAS_SLACK_WEBHOOK_URL", secret=True)
    email_to: tuple[str, ...] = setting([], "recipients of alert email")
    email_from: str = setting("atlas@localhost", "sender of alert email")
    smtp_host: str | None = setting(None, "SMTP server for alert email")
    smtp_port: int = setting(587, "SMTP port", bounds=Bounds(1, 65535))
    smtp_tls: bool = setting(True, "use STARTTLS")
    smtp_username: str | None = setting(None, "SMTP user")
    smtp_password: str | None = setting(None, "SMTP password", env="ATLAS_SMTP_PASSWORD", secret=True)
    realert: timedelta = setting(timedelta(hours=24), "do not re-send the same anomaly event within this time")
    watcher_slack_account: str | None = setting(None, "Watcher Slack account name used by generated watches")
    watcher_email_account: str | None = setting(None, "Watcher email account name used by generated watches")


@dataclass(frozen=True)
class KibanaSettings:
    url: str = setting(
        "http://127.0.0.1:5601", "Kibana URL for `atlas kibana import`", env="ATLAS_KIBANA_URL", urls=True
    )
    space: str = setting("default", "Kibana space for imported saved objects")


@dataclass(frozen=True)
class Settings:
    es: EsSettings = field(default_factory=EsSettings)
    source: SourceSettings = field(default_factory=SourceSettings)
    surprise: SurpriseSettings = field(default_factory=SurpriseSettings)
    threshold: ThresholdSettings = field(default_factory=ThresholdSettings)
    grouping: GroupingSettings = field(default_factory=GroupingSettings)
    results: ResultsSettings = field(default_factory=ResultsSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    kibana: KibanaSettings = field(default_factory=KibanaSettings)


def sections() -> list[tuple[str, type[Any]]]:
    """The settings sections in file order: (name, dataclass)."""
    return [(f.name, typing.get_type_hints(Settings)[f.name]) for f in dataclasses.fields(Settings)]


def load_settings(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read `path` (None: defaults only), then the environment, then dotted-key `overrides`, and validate."""
    raw = _read_file(path) if path is not None else {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    known = dict(sections())
    for key in overrides or {}:
        if key not in setting_keys():
            raise ConfigError(f"unknown setting {key!r} ({closest(str(key), setting_keys())})")
    for name in raw:
        if name not in known:
            raise ConfigError(f"unknown section {name!r} ({closest(str(name), list(known))})")
    _warn_unknown_variables(os.environ)
    _remember_secrets(raw, overrides or {}, os.environ)
    built = {
        name: _build_section(name, cls, raw.get(name), dict(overrides or {}), os.environ) for name, cls in known.items()
    }
    settings = Settings(**built)
    _validate(settings)
    return settings


def _remember_secrets(raw: dict[Any, Any], overrides: Mapping[str, Any], environ: Mapping[str, str]) -> None:
    """Hand every secret and every URL's credentials, from file, environment and options, to `atlas.masking` before
    any check runs: no message quoting a value can then show them."""
    for name, cls in sections():
        section = raw.get(name)
        for spec in dataclasses.fields(cls):
            env = spec.metadata.get("env")
            file_value = section.get(spec.name) if isinstance(section, dict) else None
            for value in (file_value, environ.get(env) if env else None, overrides.get(f"{name}.{spec.name}")):
                if spec.metadata.get("secret") and isinstance(value, str):
                    remember(value)
                if spec.metadata.get("urls") and isinstance(value, (str, list)):
                    remember_urls(value)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last silently)."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        # An alias repeats a node by reference; a few nested ones expand to more than memory once written out.
        if self.check_event(yaml.AliasEvent):
            line = self.peek_event().start_mark.line + 1  # type: ignore[no-untyped-call]
            raise ConfigError(f"{self.name}:{line}: YAML aliases (*name) are not accepted in atlas.yml")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                line = key_node.start_mark.line + 1
                raise ConfigError(f"{self.name}:{line}: the key {key!r} is given twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_file(path: Path) -> Any:
    try:
        text = files.read_text(path, "configuration")
    except DataError as exc:  # the file's own problem is a configuration error here
        raise ConfigError(str(exc)) from exc
    try:
        loader = _UniqueKeyLoader(text)
        loader.name = str(path)
        try:
            return loader.get_single_data() or {}
        finally:
            loader.dispose()
    except RecursionError as exc:
        raise ConfigError(f"{path}: nested too deeply") from exc
    except yaml.YAMLError as exc:
        # file:line:column and the problem, never YAML's own text: it quotes the line, which may hold a password.
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None


def _build_section(name: str, cls: type[Any], raw: Any, overrides: dict[str, Any], environ: Mapping[str, str]) -> Any:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            dotted_keys = [f"{name}.{k}" for k in fields]
            raise ConfigError(f"unknown key {name}.{key} ({closest(f'{name}.{key}', dotted_keys, setting_keys())})")
    values: dict[str, Any] = {}
    for key, spec in fields.items():
        dotted = f"{name}.{key}"
        env = spec.metadata.get("env")
        if spec.metadata.get("secret") and key in raw:
            raise ConfigError(f"{dotted}: secrets are read only from the environment ({env}), not from the file")
        bounds = declared_bounds(spec, hints[key])
        if key in raw:
            values[key] = _coerce(raw[key], hints[key], dotted, bounds)
        if env and environ.get(env):
            values[key] = _coerce(_listed(environ[env], hints[key]), hints[key], env, bounds)
        if dotted in overrides:
            values[key] = _coerce(_listed(overrides[dotted], hints[key]), hints[key], dotted, bounds)
    return cls(**values)


def _listed(value: Any, hint: Any) -> Any:
    """A list setting given as text (environment, command line) is comma-separated."""
    return value.split(",") if hint == tuple[str, ...] and isinstance(value, str) else value


def _coerce(value: Any, hint: Any, where: str, bounds: Bounds | None = None) -> Any:
    """Check `value` against the declared type `hint` (and a number's or duration's `bounds`); return it in that
    type or raise ConfigError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), where, bounds)
    if value is None:
        raise ConfigError(f"{where}: must not be empty")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: must be one of {', '.join(map(str, args))}, got {value!r}")
        return value
    if origin is tuple:
        items = value if isinstance(value, list) else None
        if items is None:
            raise ConfigError(f"{where}: must be a list, got {value!r}")
        return tuple(_coerce(item, args[0], f"{where}[{i}]", bounds) for i, item in enumerate(items))
    if origin in (Mapping, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: must be a mapping, got {value!r}")
        if args[1] is str:
            for k, v in value.items():
                if not isinstance(k, str) or not isinstance(v, str) or not v:
                    raise ConfigError(f"{where}.{k}: must map a name to a field name, got {v!r}")
        return types.MappingProxyType(dict(value))
    if hint is timedelta:
        if not isinstance(value, timedelta):
            try:
                value = parse_duration(str(value))
            except ValueError as exc:
                raise ConfigError(f"{where}: {exc}") from exc
        return _within(value, bounds or DURATION, where)
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, got {value!r}")
        return value
    if hint in (int, float):
        return _number(value, hint, where, bounds)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string, got {value!r}")
        if _CONTROL.search(value):
            raise ConfigError(f"{where}: must not hold control characters (newline, tab, NUL, escape...)")
        return value
    raise TypeError(f"unsupported setting type {hint!r} at {where}")


# Numbers as text (the environment, --set, a quoted YAML value): ASCII only, so neither 'inf', 'nan', '0x10' nor
# Unicode digits ('²', '١٢', which Python's int() and float() read) pass.
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,18}")
_FLOAT_TEXT = re.compile(r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,4})?")


def _number(value: Any, hint: type[int] | type[float], where: str, bounds: Bounds | None) -> int | float:
    """The one check of every numeric setting, however it is spelled (YAML number, quoted text, environment,
    --set): a number of the declared kind (never a boolean), finite, within its declared `bounds`."""
    kind = "a whole number" if hint is int else "a finite number"
    if isinstance(value, str):
        text = value.strip()
        if not (_INT_TEXT if hint is int else _FLOAT_TEXT).fullmatch(text):
            raise ConfigError(f"{where}: must be {kind}, got {value!r}")
        value = int(text) if hint is int else float(text)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (hint is int and not isinstance(value, int)):
        raise ConfigError(f"{where}: must be {kind}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):  # .inf, .nan, 1e309
        raise ConfigError(f"{where}: must be a finite number, got {value!r}")
    if bounds is None:
        raise TypeError(f"the numeric setting {where} declares no bounds")
    _within(value, bounds, where)  # before float(): an int of 400 digits does not fit a float
    return float(value) if hint is float else value


def _within(value: Any, bounds: Bounds, where: str) -> Any:
    if not bounds.holds(value):
        shown = duration_text(value) if isinstance(value, timedelta) else f"{value!r}"
        shown = shown if len(shown) <= 40 else shown[:20] + "..." + shown[-5:]
        raise ConfigError(f"{where}: must be {bounds.describe()}, got {shown}")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_JOB = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")
MAX_BUCKETS_PER_SERIES = 10_000  # warm-up + window buckets of one series in one request


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _validate(s: Settings) -> None:
    _require(bool(s.es.urls) or bool(s.es.cloud_id), "es.urls: give at least one URL or es.cloud_id")
    for i, url in enumerate(s.es.urls):
        _check_url(url, f"es.urls[{i}]")
        parts = urllib.parse.urlsplit(url)
        _require(  # the client would fail on a user without a password with a bare TypeError
            parts.username is None or parts.password is not None,
            f"es.urls[{i}]: {mask(url)!r} names a user without a password; write user:password@host,"
            " or set ATLAS_ES_API_KEY",
        )
    if s.es.cloud_id:
        _check_cloud_id(s.es.cloud_id)
    _require(bool(s.source.index.strip()), "source.index: must name an index or index pattern")
    _require(bool(s.source.series_fields), "source.series_fields: name at least one series field")
    sp = s.surprise
    _require(sp.window % sp.interval == timedelta(0), "surprise.window: must be a multiple of surprise.interval")
    _require(sp.step % sp.interval == timedelta(0), "surprise.step: must be a multiple of surprise.interval")
    # Accepting it and computing without it would be worse than refusing: say so at load.
    _require(
        sp.season is None, "surprise.season: the seasonal baseline (serial_diff) is not implemented yet; remove it"
    )
    _require(
        sp.scale_window is None or sp.normalization in ("zscore", "gaussian"),
        "surprise.scale_window: only surprise.normalization zscore and gaussian divide by a std; remove it",
    )
    buckets = sp.window // sp.interval + sp.warm_up_buckets
    _require(
        buckets <= MAX_BUCKETS_PER_SERIES,
        f"surprise.window: {buckets} buckets per series with the warm-up of the baseline and std; at most"
        f" {MAX_BUCKETS_PER_SERIES} (a longer surprise.interval, or a shorter window)",
    )
    _require(bool(sp.percentiles), "surprise.percentiles: give at least one percentile")
    _require(
        sp.combine_by is None or (bool(sp.combine_by.strip()) and sp.normalization == "gaussian"),
        "surprise.combine_by: name a keyword field, with surprise.normalization: gaussian (a sum of -ln p(x))",
    )
    th = s.threshold
    _require(th.window <= th.lookback, "threshold.lookback: must be at least threshold.window")
    _require(len(th.levels) == 3 and list(th.levels) == sorted(th.levels), "threshold.levels: give 3 ascending sigmas")
    _require(th.min_duration >= sp.step, "threshold.min_duration: must be at least surprise.step")
    _validate_reach(s)
    _validate_grouping(s)
    _require(
        bool(_JOB.fullmatch(s.results.job)),
        "results.job: 1 to 100 of a-z, 0-9, _ . - (it names documents and the watch), starting with a letter or digit",
    )
    _require(
        bool(_JOB.fullmatch(s.results.prefix)),
        "results.prefix: 1 to 100 of a-z, 0-9, _ . - (it names indices), starting with a letter or digit",
    )
    _validate_alerts(s.alerts)
    _check_url(s.kibana.url, "kibana.url")


def _validate_reach(s: Settings) -> None:
    """What one computation reads back from an instant stays within clock.LONGEST (with instants in [1970, 2100),
    no arithmetic leaves 1900-2200): one window's query with its baseline's warm-up, and the threshold's history."""
    sp, th = s.surprise, s.threshold
    spans = {
        "surprise.window + surprise.baseline_window x surprise.interval (what one window's query reads)": sp.window
        + sp.baseline_window * sp.interval,
        "(threshold.lookback + threshold.min_duration / surprise.step) x surprise.step (the threshold's history)": (
            th.lookback + math.ceil(th.min_duration / sp.step)
        )
        * sp.step,
    }
    for what, span in spans.items():
        _require(span <= LONGEST, f"{what}: {duration_text(span)}, longer than {LONGEST.days}d")


def _validate_alerts(alerts: AlertSettings) -> None:
    """The alert channels, checked with the rest of the configuration rather than when a message is sent."""
    if alerts.slack_webhook is not None:
        check_webhook(alerts.slack_webhook, "alerts.slack_webhook (ATLAS_SLACK_WEBHOOK_URL)")
    if alerts.smtp_host is not None:
        check_host(alerts.smtp_host, "alerts.smtp_host")
    check_address(alerts.email_from, "alerts.email_from")
    for i, address in enumerate(alerts.email_to):
        check_address(address, f"alerts.email_to[{i}]")


def _validate_grouping(s: Settings) -> None:
    g = s.grouping
    _require(
        g.field is None or g.field in s.source.series_fields,
        f"grouping.field: {g.field!r} is not one of source.series_fields ({', '.join(s.source.series_fields)})",
    )
    _require(
        len(g.score_levels) == 2 and g.score_levels[0] <= g.score_levels[1],
        "grouping.score_levels: give 2 ascending scores between 0 and 100",
    )
    _require(
        len(g.metric_levels) == 2 and g.metric_levels[0] <= g.metric_levels[1],
        "grouping.metric_levels: give 2 ascending metric counts, at least 1",
    )
    _require(len(g.min_durations) == 3, "grouping.min_durations: give 3 durations (low, medium, high)")


def _check_url(url: str, where: str) -> None:
    """A URL atlas can connect to: http(s), a host, a port in range, nothing after the host that looks like the rest
    of a password; the message shows the URL masked and never the parser's own text (it may quote a password's
    piece as a port)."""
    shown = mask(url)
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise ConfigError(f"{where}: {shown!r} is not a URL (a bad IPv6 address)") from None
    _require(parts.scheme in ("http", "https"), f"{where}: {shown!r} must start with http:// or https://")
    _require(
        "@" not in urllib.parse.urlunsplit(("", "", parts.path, parts.query, parts.fragment)),
        f"{where}: {shown!r} has an '@' after its host; percent-encode '/', '?', '#' and '@' in a user or password"
        " (%2F, %3F, %23, %40)",
    )
    _require(not re.search(r"\s", url), f"{where}: {shown!r} holds a space; percent-encode it (%20)")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{where}: {shown!r} is not a URL (its port is not a number from 1 to 65535)") from None
    _require(bool(parts.hostname), f"{where}: {shown!r} names no host")
    _require(port is None or port > 0, f"{where}: {shown!r} has port 0")


def _check_cloud_id(cloud_id: str) -> None:
    """Elastic Cloud ids are `<name>:<base64 of host$es-id$kibana-id>`."""
    name, sep, encoded = cloud_id.partition(":")
    try:
        decoded = base64.b64decode(encoded.encode(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        decoded = ""
    parts = decoded.split("$")
    _require(
        bool(name and sep and len(parts) >= 2 and all(parts[:2])),
        "es.cloud_id: not an Elastic Cloud id (<name>:<base64 text>, as the deployment's page shows it)",
    )


def closest(name: str, known: Sequence[str], wider: Sequence[str] = ()) -> str:
    """`did you mean ...?` with the known names closest to `name` (difflib, whole or by the key after the section),
    looked for in `known` then `wider`; else the list of `known` names."""
    for names in (known, wider):
        # A shared section (`threshold.`) makes every key of it look alike: keys are compared after the section.
        ratios = {n: (_likeness(name.rpartition(".")[2], n.rpartition(".")[2]), _likeness(name, n)) for n in names}
        best = max((r[0] for r in ratios.values()), default=0.0)
        ranked = sorted(ratios, key=lambda n: ratios[n], reverse=True)
        matches = [n for n in ranked if ratios[n][0] >= max(0.6, best - 0.05)][:3]
        if matches:
            return "did you mean " + " or ".join(matches) + "?"
    return f"known: {', '.join(known)}" if len(known) <= 20 else "atlas config show lists every setting"


def _likeness(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio()


# ATLAS_* variables atlas reads besides the settings' own (settings declare theirs with `env=`).
OTHER_VARIABLES = ("ATLAS_CONFIG", "ATLAS_HOME")


def environment_variables() -> list[str]:
    """Every ATLAS_* environment variable atlas reads."""
    declared = [f.metadata["env"] for _, cls in sections() for f in dataclasses.fields(cls) if f.metadata.get("env")]
    return [*declared, *OTHER_VARIABLES]


def _warn_unknown_variables(environ: Mapping[str, str]) -> None:
    """A warning, not an error, for an ATLAS_* variable atlas does not read: the environment is shared with other
    programs, but a misspelt ATLAS_ES_URLS should not pass unseen. ATLAS_TEST_* belong to atlas's tests."""
    known = environment_variables()
    for name in sorted(environ):
        if name.startswith("ATLAS_") and not name.startswith("ATLAS_TEST_") and name not in known:
            log.warning("%s is not a variable atlas reads (%s)", name, closest(name, known))


def declared_bounds(spec: dataclasses.Field[Any], hint: Any) -> Bounds | None:
    """The bounds a setting's value (or each of its items) keeps: declared, or DURATION for any duration."""
    bounds: Bounds | None = spec.metadata.get("bounds")
    return bounds or (DURATION if timedelta in (hint, *typing.get_args(hint)) else None)


def setting_keys() -> list[str]:
    """Every setting's dotted key, in file order."""
    return [f"{name}.{f.name}" for name, cls in sections() for f in dataclasses.fields(cls)]

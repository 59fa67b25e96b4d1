"""Load atlas.yml, environment and command-line overrides into frozen, validated settings."""

from __future__ import annotations

import base64
import dataclasses
import math
import os
import re
import types
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml

from atlas.clock import parse_duration
from atlas.errors import ConfigError

MASK = "********"


def setting(default: Any, help: str, *, env: str | None = None, secret: bool = False) -> Any:
    """Declare one setting: its default, help text and, optionally, the environment variable that overrides it.

    A secret is read only from its environment variable, never from the file, and is masked when shown.
    """
    meta = {"help": help, "env": env, "secret": secret}
    if isinstance(default, (list, dict)):
        frozen = tuple(default) if isinstance(default, list) else types.MappingProxyType(default)
        return field(default_factory=lambda: frozen, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class EsSettings:
    urls: tuple[str, ...] = setting(
        ["http://127.0.0.1:9250"], "Elasticsearch URL(s); the default is the embedded node", env="ATLAS_ES_URL"
    )
    cloud_id: str | None = setting(None, "Elastic Cloud id, instead of urls", env="ATLAS_ES_CLOUD_ID")
    username: str | None = setting(None, "user for basic authentication", env="ATLAS_ES_USERNAME")
    password: str | None = setting(None, "password for basic authentication", env="ATLAS_ES_PASSWORD", secret=True)
    api_key: str | None = setting(None, "API key (base64 id:key)", env="ATLAS_ES_API_KEY", secret=True)
    ca_certs: str | None = setting(None, "path of a CA certificate bundle (PEM)", env="ATLAS_ES_CA_CERTS")
    verify_certs: bool = setting(True, "verify the server's TLS certificate")
    request_timeout: timedelta = setting(timedelta(seconds=60), "timeout of one request")
    max_retries: int = setting(3, "retries of a request on connection errors and timeouts")


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
    interval: timedelta = setting(timedelta(hours=1), "bucket size of each series (date_histogram fixed_interval)")
    baseline_window: int = setting(24, "buckets in the trailing baseline (current bucket excluded)")
    scale_window: int | None = setting(
        None,
        "zscore and gaussian only: buckets in the trailing std that divides the deviation (current bucket excluded),"
        " e.g. a day's while the baseline takes 2 hours; null = baseline_window",
    )
    baseline: Literal["median", "mean"] = setting(
        "median", "baseline of each bucket: median (a disruption shorter than half the window leaves no trace) or mean"
    )
    season: timedelta | None = setting(None, "seasonal baseline (not implemented yet: must stay null)")
    window: timedelta = setting(timedelta(hours=24), "length of the window whose surprise is scored")
    step: timedelta = setting(timedelta(hours=1), "how far consecutive windows slide; window ends align to it")
    mode: Literal["max", "last"] = setting("last", "window surprise: its last bucket, or max over the window")
    normalization: Literal["relative", "none", "zscore", "gaussian"] = setting(
        "relative",
        "relative divides surprise by abs(baseline); zscore by the std of the last scale_window buckets; gaussian:"
        " -ln p(x), DADS's density;"
        " none keeps the units",
    )
    percentiles: tuple[float, ...] = setting([90.0, 99.0], "percentiles of window surprise across a metric's series")
    min_tail_series: int = setting(
        5, "report percentile p only when n * (1 - p/100) >= this of the n series (the lowest always); 0 = always"
    )
    top_series: int = setting(5, "most surprising series named with each result")
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
    window: int = setting(24, "previous points in the moving mean and standard deviation")
    lookback: int = setting(
        72, "previous points searched for `window` unflagged ones (flagged points are left out); = window: plain"
    )
    sigmas: float = setting(6.0, "a point is anomalous above mean + sigmas * std")
    levels: tuple[float, ...] = setting([6.0, 8.0, 10.0], "sigmas for severity low, medium, high")
    min_duration: timedelta = setting(timedelta(hours=1), "shortest anomaly event reported")


@dataclass(frozen=True)
class GroupingSettings:
    """How alerts, the report and `atlas evaluate` group events and rate them (docs/scores-and-grouping.md)."""

    field: str | None = setting(
        None, "series field whose values group events (e.g. node); null: group all metrics at overlapping hours"
    )
    min_share: float = setting(0.5, "share of an event's influence a field value needs for the event to join it")
    score_levels: tuple[float, ...] = setting([50.0, 75.0], "peak scores that each raise criticality one step")
    metric_levels: tuple[int, ...] = setting([2, 3], "metric counts that each raise criticality one step")
    min_durations: tuple[timedelta, ...] = setting(
        [timedelta(hours=1)] * 3, "shortest grouped event reported, for criticality low, medium, high"
    )


@dataclass(frozen=True)
class ResultsSettings:
    job: str = setting("default", "job id; results of different jobs share the indices")
    prefix: str = setting("atlas", "prefix of the result indices (<prefix>-surprise, -anomalies, -state)")
    shards: int = setting(1, "primary shards of each result index")
    replicas: int = setting(0, "replicas of each result index")


@dataclass(frozen=True)
class AlertSettings:
    slack_webhook: str | None = setting(None, "Slack incoming-webhook URL", env="ATLAS_SLACK_WEBHOOK_URL", secret=True)
    email_to: tuple[str, ...] = setting([], "recipients of alert email")
    email_from: str = setting("atlas@localhost", "sender of alert email")
    smtp_host: str | None = setting(None, "SMTP server for alert email")
    smtp_port: int = setting(587, "SMTP port")
    smtp_tls: bool = setting(True, "use STARTTLS")
    smtp_username: str | None = setting(None, "SMTP user")
    smtp_password: str | None = setting(None, "SMTP password", env="ATLAS_SMTP_PASSWORD", secret=True)
    realert: timedelta = setting(timedelta(hours=24), "do not re-send the same anomaly event within this time")
    watcher_slack_account: str | None = setting(None, "Watcher Slack account name used by generated watches")
    watcher_email_account: str | None = setting(None, "Watcher email account name used by generated watches")


@dataclass(frozen=True)
class KibanaSettings:
    url: str = setting("http://127.0.0.1:5601", "Kibana URL for `atlas kibana import`", env="ATLAS_KIBANA_URL")
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
            raise ConfigError(f"unknown setting {key!r} (settings are named section.key, e.g. results.prefix)")
    for name in raw:
        if name not in known:
            raise ConfigError(f"unknown section {name!r} (known: {', '.join(known)})")
    built = {
        name: _build_section(name, cls, raw.get(name), dict(overrides or {}), os.environ) for name, cls in known.items()
    }
    settings = Settings(**built)
    _validate(settings)
    return settings


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last silently)."""

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
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text") from exc
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
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc


def _build_section(name: str, cls: type[Any], raw: Any, overrides: dict[str, Any], environ: Mapping[str, str]) -> Any:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise ConfigError(f"unknown key {name}.{key} (known: {', '.join(fields)})")
    values: dict[str, Any] = {}
    for key, spec in fields.items():
        dotted = f"{name}.{key}"
        env = spec.metadata.get("env")
        if spec.metadata.get("secret") and key in raw:
            raise ConfigError(f"{dotted}: secrets are read only from the environment ({env}), not from the file")
        if key in raw:
            values[key] = _coerce(raw[key], hints[key], dotted)
        if env and environ.get(env):
            text = environ[env]
            values[key] = _coerce(text.split(",") if hints[key] == tuple[str, ...] else text, hints[key], env)
        if dotted in overrides and overrides[dotted] is not None:
            values[key] = _coerce(overrides[dotted], hints[key], dotted)
    return cls(**values)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against the declared type `hint`; return it in that type or raise ConfigError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), where)
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
        return tuple(_coerce(item, args[0], f"{where}[{i}]") for i, item in enumerate(items))
    if origin in (Mapping, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: must be a mapping, got {value!r}")
        if args[1] is str:
            for k, v in value.items():
                if not isinstance(k, str) or not isinstance(v, str) or not v:
                    raise ConfigError(f"{where}.{k}: must map a name to a field name, got {v!r}")
        return types.MappingProxyType(dict(value))
    if hint is timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,18}\s*", value):  # ASCII digits only: '²' is a digit
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: must be a whole number, got {value!r}")
        if abs(value) > 10**12:
            raise ConfigError(f"{where}: {value} is out of range")
        return value
    if hint is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a string, got {value!r}")
        if _CONTROL.search(value):
            raise ConfigError(f"{where}: must not hold control characters (newline, tab, NUL, escape...)")
        return value
    raise TypeError(f"unsupported setting type {hint!r} at {where}")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_JOB = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")
MAX_BUCKETS_PER_SERIES = 10_000  # warm-up + window buckets of one series in one request
MAX_SCALE_WINDOW = 5_000  # a week of 5-minute buckets, 3.5 days of 1-minute ones


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _validate(s: Settings) -> None:
    _require(bool(s.es.urls) or bool(s.es.cloud_id), "es.urls: give at least one URL or es.cloud_id")
    for i, url in enumerate(s.es.urls):
        _check_url(url, f"es.urls[{i}]")
    if s.es.cloud_id:
        _check_cloud_id(s.es.cloud_id)
    _require(0 <= s.es.max_retries <= 100, "es.max_retries: must be between 0 and 100")
    _require(
        timedelta(seconds=1) <= s.es.request_timeout <= timedelta(hours=1),
        "es.request_timeout: must be between 1s and 1h",
    )
    _require(bool(s.source.index.strip()), "source.index: must name an index or index pattern")
    _require(bool(s.source.series_fields), "source.series_fields: name at least one series field")
    _require(s.source.ingest_delay >= timedelta(0), "source.ingest_delay: must not be negative")
    sp = s.surprise
    for key in ("interval", "window", "step"):
        _require(getattr(sp, key) >= timedelta(seconds=1), f"surprise.{key}: must be at least 1s")
    _require(sp.window % sp.interval == timedelta(0), "surprise.window: must be a multiple of surprise.interval")
    _require(sp.step % sp.interval == timedelta(0), "surprise.step: must be a multiple of surprise.interval")
    # Accepting it and computing without it would be worse than refusing: say so at load.
    _require(
        sp.season is None, "surprise.season: the seasonal baseline (serial_diff) is not implemented yet; remove it"
    )
    _require(1 <= sp.baseline_window <= 1000, "surprise.baseline_window: must be between 1 and 1000")
    _require(
        sp.scale_window is None or 2 <= sp.scale_window <= MAX_SCALE_WINDOW,
        f"surprise.scale_window: must be between 2 and {MAX_SCALE_WINDOW} (or null: baseline_window)",
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
    for i, p in enumerate(sp.percentiles):
        _require(0 < p <= 100, f"surprise.percentiles[{i}]: {p} is not in (0, 100]")
    _require(1 <= sp.top_series <= 1000, "surprise.top_series: must be between 1 and 1000")
    _require(0 <= sp.min_tail_series <= 1_000_000, "surprise.min_tail_series: must be between 0 and 1000000")
    _require(
        sp.combine_by is None or (bool(sp.combine_by.strip()) and sp.normalization == "gaussian"),
        "surprise.combine_by: name a keyword field, with surprise.normalization: gaussian (a sum of -ln p(x))",
    )
    th = s.threshold
    _require(2 <= th.window <= 1000, "threshold.window: must be between 2 and 1000")
    _require(th.window <= th.lookback <= 10_000, "threshold.lookback: must be between threshold.window and 10000")
    _require(th.sigmas > 0, "threshold.sigmas: must be > 0")
    _require(len(th.levels) == 3 and list(th.levels) == sorted(th.levels), "threshold.levels: give 3 ascending sigmas")
    _require(th.min_duration >= sp.step, "threshold.min_duration: must be at least surprise.step")
    _validate_grouping(s)
    _require(
        bool(_JOB.fullmatch(s.results.job)),
        "results.job: 1 to 100 of a-z, 0-9, _ . - (it names documents and the watch), starting with a letter or digit",
    )
    _require(
        bool(_JOB.fullmatch(s.results.prefix)),
        "results.prefix: 1 to 100 of a-z, 0-9, _ . - (it names indices), starting with a letter or digit",
    )
    _require(
        1 <= s.results.shards <= 1024 and 0 <= s.results.replicas <= 100,
        "results.shards/replicas: shards 1 to 1024, replicas 0 to 100",
    )
    _require(1 <= s.alerts.smtp_port <= 65535, "alerts.smtp_port: must be a port number (1 to 65535)")
    _check_url(s.kibana.url, "kibana.url")


def _validate_grouping(s: Settings) -> None:
    g = s.grouping
    _require(
        g.field is None or g.field in s.source.series_fields,
        f"grouping.field: {g.field!r} is not one of source.series_fields ({', '.join(s.source.series_fields)})",
    )
    _require(0 < g.min_share <= 1, "grouping.min_share: must be in (0, 1]")
    _require(
        len(g.score_levels) == 2 and 0 < g.score_levels[0] <= g.score_levels[1] <= 100,
        "grouping.score_levels: give 2 ascending scores between 0 and 100",
    )
    _require(
        len(g.metric_levels) == 2 and 1 <= g.metric_levels[0] <= g.metric_levels[1],
        "grouping.metric_levels: give 2 ascending metric counts, at least 1",
    )
    _require(
        len(g.min_durations) == 3 and all(d >= timedelta(0) for d in g.min_durations),
        "grouping.min_durations: give 3 durations (low, medium, high), none negative",
    )


def _check_url(url: str, where: str) -> None:
    """A URL atlas can connect to: http(s), a host, a port in range; the message never shows its credentials."""
    shown = mask_userinfo(url)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{where}: {shown!r} is not a URL ({_without(str(exc), url)})") from None
    _require(parts.scheme in ("http", "https"), f"{where}: {shown!r} must start with http:// or https://")
    _require(bool(parts.hostname), f"{where}: {shown!r} names no host")
    _require(port is None or port > 0, f"{where}: {shown!r} has port 0")


def _without(text: str, secret_bearing: str) -> str:
    """An error text with the URL it may quote masked."""
    return text.replace(secret_bearing, mask_userinfo(secret_bearing))


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


def mask_userinfo(url: str) -> str:
    """`https://user:pass@host` -> `https://********@host`: credentials in a URL are secrets too."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    return f"{scheme}://{MASK}@{rest.split('@', 1)[1]}"


def setting_keys() -> list[str]:
    """Every setting's dotted key, in file order."""
    return [f"{name}.{f.name}" for name, cls in sections() for f in dataclasses.fields(cls)]

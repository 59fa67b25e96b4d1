"""Load atlas.yml, environment and command-line overrides into frozen, validated settings."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from atlas.addresses import check_address, check_host, check_webhook
from atlas.clock import LONGEST
from atlas.errors import ConfigError
from atlas.masking import mask, remember, remember_urls
from atlas.setting_values import (
    Bounds,
    build_section,
    check_cloud_id,
    check_url,
    closest,
    duration_text,
    read_yaml_file,
    require,
    setting,
)

log = logging.getLogger(__name__)


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
    metrics: tuple[str, ...] = setting(
        [], "long form: the metrics to watch; empty = every metric with documents in what the windows read"
    )
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
        bounds=Bounds(2, 8_640),  # a month of 5-minute buckets, 6 days of 1-minute ones
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
    raw = read_yaml_file(path) if path is not None else {}
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
        name: build_section(name, cls, raw.get(name), dict(overrides or {}), os.environ, setting_keys())
        for name, cls in known.items()
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


_JOB = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")
MAX_BUCKETS_PER_SERIES = 10_000  # warm-up + window buckets of one series in one request


def _validate(s: Settings) -> None:
    require(bool(s.es.urls) or bool(s.es.cloud_id), "es.urls: give at least one URL or es.cloud_id")
    for i, url in enumerate(s.es.urls):
        check_url(url, f"es.urls[{i}]")
        parts = urllib.parse.urlsplit(url)
        require(  # the client would fail on a user without a password with a bare TypeError
            parts.username is None or parts.password is not None,
            f"es.urls[{i}]: {mask(url)!r} names a user without a password; write user:password@host,"
            " or set ATLAS_ES_API_KEY",
        )
    if s.es.cloud_id:
        check_cloud_id(s.es.cloud_id)
    require(bool(s.source.index.strip()), "source.index: must name an index or index pattern")
    require(bool(s.source.series_fields), "source.series_fields: name at least one series field")
    sp = s.surprise
    require(sp.window % sp.interval == timedelta(0), "surprise.window: must be a multiple of surprise.interval")
    require(sp.step % sp.interval == timedelta(0), "surprise.step: must be a multiple of surprise.interval")
    # Accepting it and computing without it would be worse than refusing: say so at load.
    require(sp.season is None, "surprise.season: the seasonal baseline (serial_diff) is not implemented yet; remove it")
    require(
        sp.scale_window is None or sp.normalization in ("zscore", "gaussian"),
        "surprise.scale_window: only surprise.normalization zscore and gaussian divide by a std; remove it",
    )
    buckets = sp.window // sp.interval + sp.warm_up_buckets
    require(
        buckets <= MAX_BUCKETS_PER_SERIES,
        f"surprise.window: {buckets} buckets per series with the warm-up of the baseline and std; at most"
        f" {MAX_BUCKETS_PER_SERIES} (a longer surprise.interval, or a shorter window)",
    )
    require(bool(sp.percentiles), "surprise.percentiles: give at least one percentile")
    require(
        sp.combine_by is None or (bool(sp.combine_by.strip()) and sp.normalization == "gaussian"),
        "surprise.combine_by: name a keyword field, with surprise.normalization: gaussian (a sum of -ln p(x))",
    )
    th = s.threshold
    require(th.window <= th.lookback, "threshold.lookback: must be at least threshold.window")
    require(len(th.levels) == 3 and list(th.levels) == sorted(th.levels), "threshold.levels: give 3 ascending sigmas")
    require(th.min_duration >= sp.step, "threshold.min_duration: must be at least surprise.step")
    _validate_reach(s)
    _validate_grouping(s)
    require(
        bool(_JOB.fullmatch(s.results.job)),
        "results.job: 1 to 100 of a-z, 0-9, _ . - (it names documents and the watch), starting with a letter or digit",
    )
    require(
        bool(_JOB.fullmatch(s.results.prefix)),
        "results.prefix: 1 to 100 of a-z, 0-9, _ . - (it names indices), starting with a letter or digit",
    )
    _validate_alerts(s.alerts)
    check_url(s.kibana.url, "kibana.url")


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
        require(span <= LONGEST, f"{what}: {duration_text(span)}, longer than {LONGEST.days}d")


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
    require(
        g.field is None or g.field in s.source.series_fields,
        f"grouping.field: {g.field!r} is not one of source.series_fields ({', '.join(s.source.series_fields)})",
    )
    require(
        len(g.score_levels) == 2 and g.score_levels[0] <= g.score_levels[1],
        "grouping.score_levels: give 2 ascending scores between 0 and 100",
    )
    require(
        len(g.metric_levels) == 2 and g.metric_levels[0] <= g.metric_levels[1],
        "grouping.metric_levels: give 2 ascending metric counts, at least 1",
    )
    require(len(g.min_durations) == 3, "grouping.min_durations: give 3 durations (low, medium, high)")


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


def setting_keys() -> list[str]:
    """Every setting's dotted key, in file order."""
    return [f"{name}.{f.name}" for name, cls in sections() for f in dataclasses.fields(cls)]

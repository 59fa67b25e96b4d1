"""The one numeric validator, declared bounds, alert channels, --set and the closest-name answers of settings.py."""

from __future__ import annotations

import dataclasses
import logging
import re
import typing
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from atlas.addresses import check_address, check_host, check_webhook
from atlas.cli_support import split_assignments
from atlas.errors import ConfigError
from atlas.setting_values import Bounds, declared_bounds
from atlas.settings import load_settings, sections
from atlas.settings_text import parse_assignments, render_config_file


def numeric_fields(kind: type) -> list[str]:
    """Dotted keys of every setting of `kind` (int, float, timedelta), alone or in a list."""
    keys = []
    for name, cls in sections():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            if hint is kind or hint == tuple[kind, ...] or hint == kind | None:  # type: ignore[operator]
                keys.append(f"{name}.{f.name}")
    return keys


FLOATS, INTS, DURATIONS = numeric_fields(float), numeric_fields(int), numeric_fields(timedelta)


def test_every_number_declares_its_bounds() -> None:
    declared = {
        f"{name}.{f.name}": f.metadata.get("bounds") for name, cls in sections() for f in dataclasses.fields(cls)
    }
    assert FLOATS and INTS and DURATIONS
    assert [k for k in FLOATS + INTS if not isinstance(declared[k], Bounds)] == []


def value_for(key: str, item: object) -> object:
    """`item` as the setting's value: alone, or as the one item of a list setting (given with the right length)."""
    lengths = {"threshold.levels": 3, "grouping.score_levels": 2, "grouping.metric_levels": 2}
    if key in lengths:
        return [item] * lengths[key]
    if key in ("surprise.percentiles", "grouping.min_durations"):
        return [item] * (3 if key == "grouping.min_durations" else 1)
    return item


NON_FINITE = ["inf", "-inf", "Infinity", "nan", "NaN", ".inf", "1e309", "-1e309", float("inf"), float("nan")]
NOT_NUMBERS = [True, False, "true", "", "0x10", "1_000", "\u0661\u0662", "\u00b2", "5 sigmas", [1], {"a": 1}]


@pytest.mark.parametrize("key", FLOATS)
@pytest.mark.parametrize("spelling", NON_FINITE + NOT_NUMBERS, ids=repr)
def test_a_float_setting_is_finite_and_a_number_however_spelled(key: str, spelling: object) -> None:
    with pytest.raises(ConfigError, match=f"^{key}(\\[0\\])?: must be a finite number"):
        load_settings(None, {key: value_for(key, spelling)})


@pytest.mark.parametrize("key", INTS)
@pytest.mark.parametrize("spelling", [*NON_FINITE, *NOT_NUMBERS, 2.5, "2.5", "1e3"], ids=repr)
def test_an_int_setting_is_a_whole_number_however_spelled(key: str, spelling: object) -> None:
    with pytest.raises(ConfigError, match=f"^{key}(\\[0\\])?: must be a (whole|finite) number"):
        load_settings(None, {key: value_for(key, spelling)})


@pytest.mark.parametrize("key", FLOATS + INTS)
@pytest.mark.parametrize("extreme", [10**400, -(10**400), 10**12, -(10**12), "999999999999999999"], ids=repr)
def test_a_number_outside_its_bounds_is_refused_with_the_range(key: str, extreme: object) -> None:
    with pytest.raises(ConfigError, match=f"^{key}(\\[0\\])?: must be (between|> ).* got ") as info:
        load_settings(None, {key: value_for(key, extreme)})
    assert len(str(info.value)) < 200  # a 400-digit number is not echoed whole


@pytest.mark.parametrize("key", DURATIONS)
@pytest.mark.parametrize(
    "extreme", ["3651d", "522w", "999999999999h", "-1h", timedelta(days=-1), timedelta(days=4000)], ids=repr
)
def test_a_duration_outside_its_bounds_is_refused_with_the_range(key: str, extreme: object) -> None:
    with pytest.raises(ConfigError, match=f"^{key}(\\[0\\])?: (must be between .* got |.* is (longer|not a))"):
        load_settings(None, {key: value_for(key, extreme)})


@dataclass(frozen=True)
class Case:
    id: str
    overrides: dict[str, object]
    said: str


SPANS = [
    Case("ten-year-buckets", {"surprise.interval": "3650d", "surprise.window": "3650d", "surprise.step": "3650d",
                              "threshold.min_duration": "3650d"}, "what one window's query reads"),
    Case("year-long-threshold-history", {"surprise.step": "1d", "surprise.window": "24h", "threshold.lookback": 4000,
                                         "threshold.min_duration": "1d"},
         "the threshold's history"),
    Case("sigmas-over-1000", {"threshold.sigmas": 1001}, "threshold.sigmas: must be > 0 and <= 1000, got 1001"),
    Case("percentile-0", {"surprise.percentiles": [0]}, "surprise.percentiles[0]: must be > 0 and <= 100, got 0"),
    Case("min-share-0", {"grouping.min_share": 0}, "grouping.min_share: must be > 0 and <= 1, got 0"),
    Case("timeout-2h", {"es.request_timeout": "2h"}, "es.request_timeout: must be between 1s and 1h, got 2h"),
    Case("null-required", {"threshold.sigmas": None}, "threshold.sigmas: must not be empty"),
]  # fmt: skip


@pytest.mark.parametrize("case", SPANS, ids=[c.id for c in SPANS])
def test_spans_and_ranges_are_refused_at_load(case: Case) -> None:
    with pytest.raises(ConfigError, match=re.escape(case.said)):
        load_settings(None, case.overrides)


def test_numbers_spelled_as_text_are_read() -> None:
    s = load_settings(None, {"threshold.sigmas": " 4.5 ", "threshold.window": "+6", "surprise.percentiles": ["95"]})
    assert (s.threshold.sigmas, s.threshold.window, s.surprise.percentiles) == (4.5, 6, (95.0,))


WEBHOOKS = [
    ("https://hooks.slack.com/services/T0/B0/x", True),
    ("http://127.0.0.1:8080/hook", True),
    ("http://localhost/hook", True),
    ("http://[::1]:9/hook", True),
    ("http://hooks.slack.com/services/T0/B0/x", False),
    ("hooks.slack.com/services/x", False),
    ("https://", False),
    ("https:///path", False),
    ("ftp://hooks.example.com/x", False),
    ("https://hooks.example.com:0/x", False),
    ("https://hooks.example.com:99999/x", False),
    ("https://[::1/x", False),
    ("https://hooks example.com/x", False),
    ("https://bad_host!/x", False),
]


@pytest.mark.parametrize(("url", "good"), WEBHOOKS, ids=[u for u, _ in WEBHOOKS])
def test_a_webhook_is_https_with_a_host_and_never_shown(url: str, good: bool) -> None:
    if good:
        check_webhook(url, "alerts.slack_webhook")
        return
    with pytest.raises(ConfigError, match=r"^alerts.slack_webhook: must be an https:// URL with a host") as info:
        check_webhook(url, "alerts.slack_webhook")
    assert url not in str(info.value).replace("https://", "")


HOSTS = [("smtp.example.com", True), ("localhost", True), ("10.0.0.1", True), ("::1", True), ("mail.", True),
         ("", False), ("smtp://mail", False), ("mail:25", False), ("a b", False), ("-mail", False),
         ("x" * 64 + ".com", False), ("mail/x", False)]  # fmt: skip


@pytest.mark.parametrize(("host", "good"), HOSTS, ids=[repr(h) for h, _ in HOSTS])
def test_an_smtp_host_is_a_name_or_an_address(host: str, good: bool) -> None:
    if good:
        check_host(host, "alerts.smtp_host")
    else:
        with pytest.raises(ConfigError, match=r"^alerts.smtp_host: .* is not a host name or IP address"):
            check_host(host, "alerts.smtp_host")


ADDRESSES = [("sre@example.com", True), ("atlas@localhost", True), ("a.b+c@mail.example.com", True),
             ("", False), ("sre", False), ("@example.com", False), ("sre@", False), ("a b@example.com", False),
             ("Atlas <atlas@example.com>", False), ("a@b@c", False), ("sre@exa mple.com", False),
             ("a,b@example.com", False), ("x" * 250 + "@example.com", False)]  # fmt: skip


@pytest.mark.parametrize(("address", "good"), ADDRESSES, ids=[repr(a)[:30] for a, _ in ADDRESSES])
def test_an_email_address_is_well_formed(address: str, good: bool) -> None:
    if good:
        check_address(address, "alerts.email_to[0]")
    else:
        with pytest.raises(ConfigError, match=r"^alerts.email_to\[0\]: .* is not an email address"):
            check_address(address, "alerts.email_to[0]")


def test_alert_settings_are_checked_when_settings_load(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"^alerts.smtp_host: 'smtp://mail' is not"):
        load_settings(None, {"alerts.smtp_host": "smtp://mail"})
    with pytest.raises(ConfigError, match=r"^alerts.email_to\[1\]: 'nobody' is not an email address"):
        load_settings(None, {"alerts.email_to": ["sre@example.com", "nobody"]})
    with pytest.raises(ConfigError, match=r"^alerts.email_from: "):
        load_settings(None, {"alerts.email_from": "atlas"})
    monkeypatch.setenv("ATLAS_SLACK_WEBHOOK_URL", "http://hooks.example.com/services/secret-token")
    with pytest.raises(ConfigError, match=r"^alerts.slack_webhook \(ATLAS_SLACK_WEBHOOK_URL\)") as info:
        load_settings(None, {})
    assert "secret-token" not in str(info.value)


ASSIGNMENTS = [
    (["-s", "a.b", "1"], ["-s", "a.b", "1"]),
    (["-s", "a.b=1"], ["-s", "a.b", "1"]),
    (["--set", "a.b=x=y"], ["--set", "a.b", "x=y"]),
    (["--set=a.b=1", "run"], ["--set", "a.b", "1", "run"]),
    (["-s", "source.index", "a=b"], ["-s", "source.index", "a=b"]),
    (["--config", "a=b.yml", "run"], ["--config", "a=b.yml", "run"]),
    (["run", "--", "-s", "a=b"], ["run", "--", "-s", "a=b"]),
]


@pytest.mark.parametrize(("given", "parsed"), ASSIGNMENTS, ids=[" ".join(g) for g, _ in ASSIGNMENTS])
def test_set_key_equals_value_is_split_for_click(given: list[str], parsed: list[str]) -> None:
    assert split_assignments(given) == parsed


def test_set_values_are_read_as_the_environment_reads_them() -> None:
    got = parse_assignments(
        [
            ("threshold.sigmas", "4"),
            ("source.series_fields", "query, node"),
            ("surprise.percentiles", "[95, 99.5]"),
            ("source.filter", '{"term": {"dc": "a"}}'),
            ("surprise.combine_by", "null"),
            ("source.metrics", ""),
        ]
    )
    assert got == {
        "threshold.sigmas": "4",
        "source.series_fields": ["query", "node"],
        "surprise.percentiles": [95, 99.5],
        "source.filter": {"term": {"dc": "a"}},
        "surprise.combine_by": None,
        "source.metrics": [],
    }
    s = load_settings(None, got)
    assert (s.threshold.sigmas, s.source.series_fields, s.surprise.percentiles) == (4.0, ("query", "node"), (95, 99.5))


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("threshold.sigmass", "4", "--set: unknown setting 'threshold.sigmass' (did you mean threshold.sigmas?)"),
        ("sigmas", "4", "--set: unknown setting 'sigmas' (did you mean threshold.sigmas?)"),
        ("es.password", "x", "--set es.password: secrets are read only from the environment (ATLAS_ES_PASSWORD)"),
        ("source.filter", "[[[", "--set source.filter: not JSON"),
        ("source.filter", "[" * 100_000, "--set source.filter: not JSON"),
    ],
    ids=["misspelt", "no-section", "secret", "bad-json", "deep-json"],
)
def test_bad_set_options_are_refused(key: str, value: str, said: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_assignments([(key, value)])
    assert str(info.value).startswith(said)


def test_an_unknown_atlas_variable_is_warned_about_with_the_closest(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ATLAS_ES_URLS", "http://x:9200")
    monkeypatch.setenv("ATLAS_TEST_ANYTHING", "1")
    with caplog.at_level(logging.WARNING):
        load_settings(None, {})
    assert [r.getMessage() for r in caplog.records] == [
        "ATLAS_ES_URLS is not a variable atlas reads (did you mean ATLAS_ES_URL?)"
    ]


def test_readme_and_init_state_every_bound() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    init = render_config_file()
    missing = []
    for name, cls in sections():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            bounds = declared_bounds(f, hints[f.name])
            row = next((line for line in readme.splitlines() if line.startswith(f"| `{name}.{f.name}` |")), "")
            if bounds is not None and (f"; {bounds.describe()} |" not in row or bounds.describe() not in init):
                missing.append(f"{name}.{f.name}")
    assert missing == []

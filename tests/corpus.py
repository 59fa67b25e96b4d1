"""A corpus of bad inputs (CSV files, configuration files, environment variables, options): each must end in one
`Error:` line and exit code 2 (bad input or usage), never a traceback, never a secret. Used by
tests/cli/test_corpus.py and bench/faults.py."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

PASSWORD = "corpus-canary-pw-2c1"
API_KEY = base64.b64encode(b"id:corpus-canary-key-8e4").decode()
HOOK_TOKEN = "corpus-canary-hook"
HOOK = f"https://hooks.example.com/services/{HOOK_TOKEN}"
CANARIES = (PASSWORD, API_KEY, "corpus-canary-key-8e4", HOOK, HOOK_TOKEN)
HEADER = "timestamp,metric,series,value"


@dataclass(frozen=True)
class BadInput:
    """One bad input: the files to write (name -> bytes), other paths to make (name -> `fifo`, `dir` or
    `symlink:<target>`), the environment, the command line, the exit code, and how long it may take."""

    kind: str
    name: str
    args: tuple[str, ...]
    files: dict[str, bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    exit_code: int = 2
    special: dict[str, str] = field(default_factory=dict)
    bound_s: float = 30.0  # seconds; longer is a wait past its bound (a FIFO's wait is PIPE_WAIT_SECONDS)


def _csv(name: str, body: str | bytes, *extra: str) -> BadInput:
    data = body if isinstance(body, bytes) else body.encode()
    return BadInput("csv", name, ("ingest", "csv", "in.csv", *extra), {"in.csv": data})


def _row(timestamp: str = "2024-01-01T00:00:00Z", metric: str = "cpu", series: str = "h1", value: str = "1.5") -> str:
    return f"{HEADER}\n{timestamp},{metric},{series},{value}\n"


def csv_inputs() -> Iterator[BadInput]:
    timestamps = [
        "",
        "yesterday",
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-01-01T25:00:00Z",
        "0999-01-01T00:00:00Z",
        "10000-01-01T00:00:00Z",
        "2024-01-01T00:00:00+25:00",
        "1e20",
        "-1e20",
        "nan",
        "inf",
        "0x10",
        "12:00",
        "2024/01/01",
        "--",
        "\u0661\u0662\u0663",
    ]
    for i, ts in enumerate(timestamps):
        yield _csv(f"timestamp {i} {ts!r}", _row(timestamp=ts))
    values = ["", "abc", "nan", "NaN", "inf", "-inf", "1e400", "-1e400", "1,5", "0x1p3x", "--1", "1.2.3", "true", "1 2"]
    for i, value in enumerate(values):
        yield _csv(f"value {i} {value!r}", _row(value=value))
    names = ["", "a\x00b", "a\x1b[31mred", "tab\there", "bell\x07", "del\x7f", "x" * 5000]
    for i, name in enumerate(names):
        yield _csv(f"metric name {i}", _row(metric=name))
        yield _csv(f"series name {i}", _row(series=name))
    headers = [
        "",
        "timestamp,metric,series",
        "time,metric,series,value",
        "timestamp;metric;series;value",
        "timestamp,metric,series,value,extra",
        "value,series,metric,timestamp",
    ]
    for i, header in enumerate(headers):
        yield _csv(f"header {i} {header!r}", f"{header}\n2024-01-01T00:00:00Z,cpu,h1,1\n")
    shapes = {
        "empty file": "",
        "too few columns": f"{HEADER}\n2024-01-01T00:00:00Z,cpu,1\n",
        "too many columns": f"{HEADER}\n2024-01-01T00:00:00Z,cpu,h1,1,2\n",
        "unterminated quote": f'{HEADER}\n2024-01-01T00:00:00Z,"cpu,h1,1\n',
        "good then bad": f"{HEADER}\n2024-01-01T00:00:00Z,cpu,h1,1\n2024-01-01T01:00:00Z,cpu,h1,x\n",
        "a 200 KiB line": f"{HEADER}\n2024-01-01T00:00:00Z,cpu,{'s' * 200_000},1\n",
    }
    for name, body in shapes.items():
        yield _csv(name, body)
    yield _csv("not UTF-8", f"{HEADER}\n2024-01-01T00:00:00Z,caf".encode() + b"\xe9,h1,1\n")
    yield _csv("UTF-16", _row().encode("utf-16"))
    yield _csv("binary", bytes(range(256)) * 4)
    yield BadInput("csv", "missing file", ("ingest", "csv", "nowhere.csv"))
    yield BadInput("csv", "a directory", ("ingest", "csv", "."))
    for index in ("UPPER", "_under", "-dash", "has space", "a/b", "a*b", "a,b", "..", "a#b", "a\x00b"):
        yield _csv(f"--index {index!r}", _row(), "--index", index)


def collectd_inputs() -> Iterator[BadInput]:
    """Files as collectd's csv plugin names them (`<type>-YYYY-MM-DD`; the folders above name host and plugin)."""
    name = "load-2024-05-01"
    bodies = {
        "empty file": b"",
        "truncated header": b"epoch,short",
        "truncated line": b"epoch,value\n1714557600.000,1.000000\n17145576",
        "no header": b"1714557600.000,1.000000\n",
        "fields missing": b"epoch,rx,tx\n1714557600.000,1.0\n",
        "value not a number": b"epoch,value\n1714557600.000,one\n",
        "time not epoch": b"epoch,value\n2024-05-01T10:00:00Z,1.0\n",
        "NUL bytes": b"epoch,value\n" + b"\x00" * 64 + b"\n",
        "not ASCII": b"epoch,value\n1714557600.000,\xff\n",
    }
    for case, body in bodies.items():
        yield BadInput("collectd", case, ("ingest", "collectd", name), {name: body})
    yield BadInput("collectd", "a folder without collectd files", ("ingest", "collectd", "."), {"notes.txt": b"x\n"})
    yield BadInput("collectd", "missing file", ("ingest", "collectd", "nowhere-2024-05-01"))


def config_inputs() -> Iterator[BadInput]:
    files = {
        "not a mapping": "- a\n",
        "unknown section": "nope: {}\n",
        "unknown key": "es:\n  nope: 1\n",
        "section a list": "es: [1]\n",
        "bad YAML": "es: {urls: [\n",
        "tab indentation": "es:\n\turls: []\n",
        "duplicate key": "es:\n  max_retries: 1\n  max_retries: 2\n",
        "alias in the filter": "source:\n  filter: {bool: {filter: [{term: &a {x: 1}}, *a]}}\n",
        "alias bomb": "source:\n  filter: {a: &a [x, x, x, x], b: &b [*a, *a, *a, *a], c: [*b, *b, *b, *b]}\n",
        "not UTF-8": b"es:\n  username: caf\xe9\n",
        "secret in file": f"es:\n  password: {PASSWORD}\n",
        "secret api key in file": f"es:\n  api_key: {API_KEY}\n",
        "urls not a list": "es:\n  urls: 5\n",
        "url without scheme": "es:\n  urls: [localhost:9200]\n",
        "url with secret and bad port": f"es:\n  urls: ['http://u:{PASSWORD}@h:port']\n",
        "bool as text": "es:\n  verify_certs: maybe\n",
        "negative retries": "es:\n  max_retries: -1\n",
        "timeout 0": "es:\n  request_timeout: 0s\n",
        "timeout words": "es:\n  request_timeout: one minute\n",
        "timeout 1hour": "es:\n  request_timeout: 1hour\n",
        "empty index": "source:\n  index: ''\n",
        "no series fields": "source:\n  series_fields: []\n",
        "series field a number": "source:\n  series_fields: [1]\n",
        "value_fields a list": "source:\n  value_fields: [a]\n",
        "value_fields empty name": "source:\n  value_fields: {cpu: ''}\n",
        "negative ingest delay": "source:\n  ingest_delay: -5m\n",
        "interval 0": "surprise:\n  interval: 0h\n",
        "window not multiple": "surprise:\n  window: 90m\n",
        "step not multiple": "surprise:\n  step: 30m\n",
        "mode unknown": "surprise:\n  mode: median\n",
        "normalization unknown": "surprise:\n  normalization: minmax\n",
        "season set": "surprise:\n  season: 24h\n",
        "baseline 0": "surprise:\n  baseline_window: 0\n",
        "baseline huge": "surprise:\n  baseline_window: 99999999\n",
        "percentile 0": "surprise:\n  percentiles: [0]\n",
        "percentile 101": "surprise:\n  percentiles: [101]\n",
        "percentile nan": "surprise:\n  percentiles: [.nan]\n",
        "no percentiles": "surprise:\n  percentiles: []\n",
        "top_series 0": "surprise:\n  top_series: 0\n",
        "threshold window 1": "threshold:\n  window: 1\n",
        "threshold window huge": "threshold:\n  window: 1000000\n",
        "sigmas 0": "threshold:\n  sigmas: 0\n",
        "sigmas inf": "threshold:\n  sigmas: .inf\n",
        "levels two": "threshold:\n  levels: [3, 4]\n",
        "levels descending": "threshold:\n  levels: [5, 4, 3]\n",
        "min_duration below step": "threshold:\n  min_duration: 30m\n",
        "job empty": "results:\n  job: ''\n",
        "job with space": "results:\n  job: 'a b'\n",
        "prefix upper": "results:\n  prefix: Atlas\n",
        "shards 0": "results:\n  shards: 0\n",
        "replicas negative": "results:\n  replicas: -1\n",
        "smtp port 0": "alerts:\n  smtp_port: 0\n",
        "realert words": "alerts:\n  realert: daily\n",
        "email_to a string": "alerts:\n  email_to: sre@example.com\n",
        "kibana url bad": "kibana:\n  url: 'kibana:5601'\n",
        "interval 1ms": "surprise:\n  interval: 1ms\n",
        "window overflow": "surprise:\n  window: 999999999999999999999h\n",
        "window ten years in minutes": "surprise:\n  interval: 1m\n  window: 3650d\n",
        "top_series huge": "surprise:\n  top_series: 100000000\n",
        "percentiles a string": "surprise:\n  percentiles: '90'\n",
        "percentile text": "surprise:\n  percentiles: [ninety]\n",
        "levels nan": "threshold:\n  levels: [3, .nan, 5]\n",
        "levels inf": "threshold:\n  levels: [3, 4, .inf]\n",
        "sigmas negative": "threshold:\n  sigmas: -3\n",
        "sigmas text": "threshold:\n  sigmas: three\n",
        "threshold window float": "threshold:\n  window: 6.5\n",
        "min_duration 0": "threshold:\n  min_duration: 0h\n",
        "job control char": 'results:\n  job: "a\\x07b"\n',
        "prefix with slash": "results:\n  prefix: a/b\n",
        "prefix empty": "results:\n  prefix: ''\n",
        "shards huge": "results:\n  shards: 100000\n",
        "replicas text": "results:\n  replicas: one\n",
        "smtp port huge": "alerts:\n  smtp_port: 70000\n",
        "smtp tls text": "alerts:\n  smtp_tls: sometimes\n",
        "realert overflow": "alerts:\n  realert: 99999999999999999d\n",
        "index with NUL": 'source:\n  index: "a\\0b"\n',
        "value field with escape": 'source:\n  value_field: "\\e[31m"\n',
        "metrics not a list": "source:\n  metrics: cpu\n",
        "filter a string": "source:\n  filter: 'host:a'\n",
        "time field empty list": "source:\n  time_field: []\n",
        "ca_certs a list": "es:\n  ca_certs: [a]\n",
        "username a number list": "es:\n  username: [1]\n",
        "deep nesting": "a: " + "[" * 3000 + "]" * 3000 + "\n",
        "anchors bomb": "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n",
        "section null scalar": "es: 5\n",
    }
    for name, text in files.items():
        data = text if isinstance(text, bytes) else text.encode()
        yield BadInput(
            "config", name, ("--config", "atlas.yml", "config", "show"), {"atlas.yml": data}, {"ATLAS_ES_URL": ""}
        )
    yield BadInput("config", "missing --config file", ("--config", "missing.yml", "config", "show"))


def env_inputs() -> Iterator[BadInput]:
    urls = [
        "http://",
        "http://h:notaport",
        "http://h:99999",
        "http://h:9200\nx",
        "ftp://h",
        "h:9200",
        "",
        f"http://elastic:{PASSWORD}@h:99999",
        "http://[::1",
        "http://h:-1",
    ]
    for i, url in enumerate(urls):
        if url:
            yield BadInput("env", f"ATLAS_ES_URL {i}", ("config", "show"), env={"ATLAS_ES_URL": url})
    for i, cloud in enumerate(["nocolon", "name:", "name:!!!", "name:" + base64.b64encode(b"onlyhost").decode()]):
        yield BadInput("env", f"ATLAS_ES_CLOUD_ID {i}", ("config", "show"), env={"ATLAS_ES_CLOUD_ID": cloud})
    yield BadInput("env", "ATLAS_ES_CA_CERTS control", ("config", "show"), env={"ATLAS_ES_CA_CERTS": "a\nb"})
    yield BadInput("env", "ATLAS_KIBANA_URL bad", ("config", "show"), env={"ATLAS_KIBANA_URL": "kibana"})
    yield BadInput("env", "ATLAS_CONFIG missing", ("config", "show"), env={"ATLAS_CONFIG": "/nonexistent/atlas.yml"})


def option_inputs() -> Iterator[BadInput]:
    commands = [
        ("run", "--at", "yesterday"),
        ("run", "--at", "2024-13-01"),
        ("backfill", "--from", "x", "--to", "2024-01-02"),
        ("backfill", "--from", "2024-01-03", "--to", "2024-01-02"),
        ("backfill", "--to", "2024-01-02"),
        ("anomalies", "--format", "xml"),
        ("anomalies", "--from", "soon"),
        ("query", "--at", "noon"),
        ("evaluate", "--truth", "missing.csv"),
        ("simulate", "--metrics", "0"),
        ("simulate", "--hours", "-1"),
        ("simulate", "--queries", "x"),
        ("simulate", "--distribution", "cauchy"),
        ("simulate", "--scenario", "chaos"),
        ("simulate", "--index", "UPPER"),
        ("es", "start", "--nodes", "0"),
        ("es", "start", "--nodes", "99"),
        ("es", "start", "--port", "99999"),
        ("es", "start", "--heap", "lots"),
        ("es", "start", "--version", "5.0.0"),
        ("report", "--from", "never"),
        ("watch", "execute", "--at", "later"),
        ("no-such-command",),
        ("run", "--no-such-option"),
        ("init", "--out", "."),
        ("timelion", "--metric"),
        ("kibana", "export", "--out", "/nonexistent/dir/x.ndjson"),
        ("evaluate",),
        ("backfill", "--from", "2024-01-01"),
        ("ingest", "csv"),
        ("watch", "render", "--out", "/dev/null/x"),
        ("report", "--png", "/dev/null/x.png", "--from", "2024-01-01", "--to", "2023-01-01"),
        ("es", "stop", "--version", "1.0"),
    ]
    for args in commands:
        yield BadInput("option", " ".join(args), args)


# A password in each hostile form, as (userinfo, whether an Elasticsearch URL holding it is valid in a setting of its
# own, in a comma-separated list, and as kibana.url): the canary on both sides of each separator, so a password cut
# there still shows a whole canary if leaked.
_P = PASSWORD
SECRET_FORMS = {
    "plain": (f"elastic:{_P}", True, True, True),
    "token alone": (_P, False, False, True),
    "'/' in it": (f"elastic:{_P}/{_P}", False, False, False),
    "'@' in it": (f"elastic:{_P}@{_P}", True, True, True),
    "':' in it": (f"elastic:{_P}:{_P}", True, True, True),
    "'?' and '#' in it": (f"elastic:{_P}?{_P}#{_P}", False, False, False),
    "%-escapes in it": (f"elastic:{_P}%2F%40%3A{_P}", True, True, True),
    "',' in it": (f"elastic:{_P},{_P}", True, False, True),
    "a space in it": (f"elastic:{_P} {_P}", False, False, False),
}


def secret_inputs() -> Iterator[BadInput]:
    """URLs with canary passwords in every hostile form, in every place a URL enters (es.urls and kibana.url in the
    file, their environment variables and options), without a scheme, among several, with an IPv6 host, and YAML
    errors on the line holding one; with and without -v. Where the URL is valid the command fails on the closed port
    (exit 1); nothing may print a canary."""
    ndjson = {"k.ndjson": b"{}\n"}
    closed = "127.0.0.1:9"  # the discard port: nothing listens there
    for form, (userinfo, valid, valid_in_list, valid_kibana) in SECRET_FORMS.items():
        for host in (closed, "[::1]:9") if form == "plain" else (closed,):
            url = f"http://{userinfo}@{host}"
            where = f"{form}{' [::1]' if host != closed else ''}"
            code, list_code, kibana_code = (1 if ok else 2 for ok in (valid, valid_in_list, valid_kibana))
            es_file = {"atlas.yml": f"es:\n  urls: [{json.dumps(url)}]\n".encode()}
            kibana_file = {"atlas.yml": f"kibana:\n  url: {json.dumps(url)}\n".encode()}
            kibana = ("kibana", "import", "--file", "k.ndjson")
            places = [
                ("es.urls", ("--config", "atlas.yml", "setup"), es_file, {"ATLAS_ES_URL": ""}, code),
                ("ATLAS_ES_URL", ("setup",), {}, {"ATLAS_ES_URL": url}, list_code),
                ("--es-url", ("--es-url", url, "setup"), {}, {}, list_code),
                ("ATLAS_ES_URL list", ("setup",), {}, {"ATLAS_ES_URL": f"http://{closed},{url}"}, list_code),
                ("kibana.url", ("--config", "atlas.yml", *kibana), kibana_file, {}, kibana_code),
                ("ATLAS_KIBANA_URL", kibana, {}, {"ATLAS_KIBANA_URL": url}, kibana_code),
                ("--kibana-url", (*kibana, "--kibana-url", url), {}, {}, kibana_code),
            ]
            for place, args, files, env, exit_code in places:
                for verbose in ((), ("-v",)):
                    name = f"{place} {where}{' -v' if verbose else ''}"
                    yield BadInput("secret", name, (*verbose, *args), {**files, **ndjson}, env, exit_code)
        url = f"http://{userinfo}@{closed}"
        for args in (("config", "show", url), ("simulate", "--hours", url)):  # click quotes them in usage errors
            yield BadInput("secret", f"{' '.join(args[:-1])} <URL> {form}", args)
        bare = f"{userinfo}@{closed}"
        yield BadInput("secret", f"ATLAS_ES_URL without scheme {form}", ("setup",), env={"ATLAS_ES_URL": bare})
        yield BadInput("secret", f"--kibana-url without scheme {form}", ("kibana", "import", "--kibana-url", bare))
    for form, (userinfo, *_) in SECRET_FORMS.items():
        url = f"http://{userinfo}@h:9200"
        broken = {  # YAML's own message would quote each of these lines
            "unclosed list": f"es:\n  urls: [{json.dumps(url)} x]\n",
            "bad escape": f'kibana:\n  url: "{url}\\q"\n',
            "tab": f"kibana:\n\turl: {json.dumps(url)}\n",
        }
        for problem, text in broken.items():
            for verbose in ((), ("-v",)):
                name = f"YAML error ({problem}) on the line of {form}{' -v' if verbose else ''}"
                args = (*verbose, "--config", "atlas.yml", "config", "show")
                yield BadInput("secret", name, args, {"atlas.yml": text.encode()}, {"ATLAS_ES_URL": ""})


# Instants at and past the ends of what atlas computes with ([1970-01-01, 2100-01-01)) and of the calendar.
EXTREME_INSTANTS = (
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "1969-12-31T23:59:59Z",
    "2100-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:00:00-05:00",
)
# Every command option taking an instant, with what else the command needs to get as far as reading it.
TIME_OPTIONS: tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...] = (
    (("query",), "--at", ("--metric", "cpu")),
    (("run",), "--at", ()),
    (("run",), "--at", ("--dry-run",)),
    (("backfill",), "--from", ("--to", "2024-01-02T00:00:00Z")),
    (("backfill",), "--to", ("--from", "2024-01-01T00:00:00Z")),
    (("anomalies",), "--from", ()),
    (("anomalies",), "--to", ()),
    (("report",), "--from", ()),
    (("report",), "--to", ()),
    (("evaluate",), "--from", ("--truth", "truth.csv")),
    (("evaluate",), "--to", ("--truth", "truth.csv")),
    (("watch", "execute"), "--at", ()),
    (("simulate",), "--start", ()),
)
TRUTH = b"start,end,metric\n2024-01-01T00:00:00Z,2024-01-01T02:00:00Z,cpu\n"
# Spellings of a number that is not finite, or not a number, for every float setting.
NOT_FINITE = (".inf", "-.inf", ".nan", "inf", "'inf'", "'-Infinity'", "nan", "'NaN'", "1e309", "'-1e309'", "true", "[]")


def _setting_keys(kind: type) -> list[tuple[str, str, bool]]:
    """(section, key, is a list) of every setting of `kind`, alone or in a list."""
    import dataclasses
    import typing

    from atlas.settings import sections

    found = []
    for name, cls in sections():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            if hint in (kind, kind | None) or hint == tuple[kind, ...]:  # type: ignore[operator]
                found.append((name, f.name, hint == tuple[kind, ...]))
    return found


def _config(name: str, section: str, body: str, *command: str) -> BadInput:
    text = f"{section}:\n{body}"
    args = ("--config", "atlas.yml", *(command or ("config", "show")))
    return BadInput("bound", name, args, {"atlas.yml": text.encode()}, {"ATLAS_ES_URL": ""})


def bound_inputs() -> Iterator[BadInput]:
    """Values past their bounds, generated for every option and setting of their kind: instants for every command
    taking one, durations for every duration setting, non-finite numbers for every float setting, extreme integers for
    every integer setting, ranges and counts past their limits, alert channels that could not be sent to, --set."""
    from datetime import timedelta

    for command, option, rest in TIME_OPTIONS:
        for instant in EXTREME_INSTANTS:
            files = {"truth.csv": TRUTH} if "--truth" in rest else {}
            yield BadInput(
                "bound", f"{' '.join(command)} {option} {instant}", (*command, option, instant, *rest), files
            )
    yield BadInput("bound", "backfill 1970-2099", ("backfill", "--from", "1970-01-01", "--to", "2099-12-31"))
    yield BadInput("bound", "report 1970-2099", ("report", "--from", "1970-01-01", "--to", "2099-12-31"))
    yield BadInput("bound", "truth before 1970", ("evaluate", "--truth", "t.csv"), {"t.csv": b"start,end\n0,-5\n"})
    huge_epoch = b"start,end\n1e300,1e301\n"
    yield BadInput("bound", "truth at 1e300 seconds", ("evaluate", "--truth", "t.csv"), {"t.csv": huge_epoch})
    for option in ("--metrics", "--queries", "--nodes", "--hours"):
        for count in ("0", "-1", "-99999999999", "1000001", "99999999999999999999"):
            yield BadInput("bound", f"simulate {option} {count}", ("simulate", option, count))
    for seed in ("-1", "4294967296"):
        yield BadInput("bound", f"simulate --seed {seed}", ("simulate", "--seed", seed))
    yield BadInput("bound", "simulate tuples", ("simulate", "--metrics", "1000", "--queries", "1000", "--nodes", "10"))
    late = ("simulate", "--start", "2099-12-31T00:00:00Z", "--hours", "48")
    yield BadInput("bound", "simulate hours past 2100", late)
    yield BadInput("bound", "demo --queries 0", ("demo", "--queries", "0"))
    for section, key, is_list in _setting_keys(timedelta):
        for value in ("3651d", "522w", "87601h", "999999999999ms", "9999999999999999999999d", "-1h", "1.5h", ".inf"):
            shown = f"[{value}, {value}, {value}]" if is_list else value
            yield _config(f"{section}.{key}: {value}", section, f"  {key}: {shown}\n")
    for section, key, is_list in _setting_keys(float):
        for value in NOT_FINITE:
            shown = f"[{value}, {value}, {value}]" if is_list else value
            yield _config(f"{section}.{key}: {value}", section, f"  {key}: {shown}\n")
    for section, key, is_list in _setting_keys(int):
        for value in ("-99999999999999999999", "10" * 200, "1.5", "true", "'1e3'", "'\u00b2'", ".inf"):
            shown = f"[{value}, {value}]" if is_list else value
            yield _config(f"{section}.{key}: {value[:12]}", section, f"  {key}: {shown}\n")
    ten_years = "  interval: 3650d\n  window: 3650d\n  step: 3650d\nthreshold:\n  min_duration: 3650d\n"
    yield _config("3650-day durations, then query", "surprise", ten_years, "query", "--metric", "cpu")
    long_history = "  step: 1d\nthreshold:\n  lookback: 10000\n  min_duration: 1d\n"
    yield _config("a threshold history of 27 years, then run", "surprise", long_history, "run")
    alerts = {
        "smtp host with scheme": "  smtp_host: smtp://mail.example.com\n",
        "smtp host with port": "  smtp_host: mail.example.com:25\n",
        "smtp host with space": "  smtp_host: 'mail example.com'\n",
        "smtp host empty": "  smtp_host: ''\n",
        "smtp port text": "  smtp_port: smtp\n",
        "smtp port negative": "  smtp_port: -25\n",
        "email_to not an address": "  email_to: [sre]\n",
        "email_to with a display name": "  email_to: ['SRE <sre@example.com>']\n",
        "email_to two in one": "  email_to: ['a@example.com, b@example.com']\n",
        "email_from without host": "  email_from: 'atlas@'\n",
        "email_from with newline": '  email_from: "atlas@example.com\\nBcc: x@example.com"\n',
    }
    for name, body in alerts.items():
        yield _config(name, "alerts", body)
    for i, hook in enumerate(
        [
            f"http://hooks.example.com/services/{HOOK_TOKEN}",
            f"hooks.example.com/services/{HOOK_TOKEN}",
            f"file:///tmp/{HOOK_TOKEN}",
            f"https:///services/{HOOK_TOKEN}",
            f"https://hooks.example.com:99999/{HOOK_TOKEN}",
            f"https://[hooks.example.com/{HOOK_TOKEN}",
            f"https://hooks example.com/{HOOK_TOKEN}",
        ]
    ):
        yield BadInput(
            "bound", f"ATLAS_SLACK_WEBHOOK_URL {i}", ("config", "show"), env={"ATLAS_SLACK_WEBHOOK_URL": hook}
        )
    sets = [
        ("-s", "threshold.sigmass", "4"),
        ("-s", "sigmas", "4"),
        ("-s", "threshold.sigmas", "inf"),
        ("--set", "threshold.levels=nan,1,2"),
        ("--set=surprise.percentiles=[90, 1e999]",),
        ("-s", "surprise.window", "3651d"),
        ("-s", "es.password", PASSWORD),
        ("-s", "alerts.slack_webhook", HOOK),
        ("-s", "source.filter", "{not json"),
        ("-s", "source.filter", "[" * 50_000),
        ("-s", "threshold.window", "true"),
    ]
    for args in sets:
        yield BadInput("bound", " ".join(args)[:60], (*args, "config", "show"))


# Bytes no UTF-8 reader may take for text: each reader of user files must name the file and the problem.
NOT_UTF8 = {
    "latin-1": "start,end\n2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,caf\xe9\n".encode("latin-1"),
    "UTF-16": "start,end\n2024-01-01T00:00:00Z,2024-01-01T01:00:00Z\n".encode("utf-16"),
    "binary": bytes(range(128, 256)) * 8,
    "cut multibyte": "start,end\n2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,\u00e9".encode()[:-1],
    "UTF-8 BOM then latin-1": b"\xef\xbb\xbfstart,end\n\xe9\n",
}
PIPE_BOUND_S = 30.0  # files.PIPE_WAIT_SECONDS (10) plus a busy machine's start-up


def io_inputs() -> Iterator[BadInput]:
    """Every reader of user files (truth, saved objects, configuration, CSV) given bad bytes, a missing path, a
    directory, a dangling symlink or a named pipe with no writer; every writer given a full device (/dev/full), a
    missing directory, a directory or a named pipe with no reader."""
    readers = {
        "evaluate --truth": ("evaluate", "--truth", "in.txt"),
        "report --truth": ("report", "--truth", "in.txt"),
        "kibana import --file": ("kibana", "import", "--file", "in.txt"),
        "--config": ("--config", "in.txt", "config", "show"),
    }
    for reader, args in readers.items():
        for content, data in NOT_UTF8.items():
            yield BadInput("io", f"{reader}: {content}", args, {"in.txt": data})
        yield BadInput("io", f"{reader}: missing", args)
        yield BadInput("io", f"{reader}: a directory", args, special={"in.txt": "dir"})
        yield BadInput("io", f"{reader}: a dangling symlink", args, special={"in.txt": "symlink:nowhere"})
    yield BadInput("io", "evaluate --truth: a named pipe without a writer", readers["evaluate --truth"],
                   special={"in.txt": "fifo"}, bound_s=PIPE_BOUND_S)  # fmt: skip
    yield BadInput("io", "ingest csv: a named pipe without a writer", ("ingest", "csv", "in.csv"),
                   special={"in.csv": "fifo"}, bound_s=PIPE_BOUND_S)  # fmt: skip
    yield BadInput("io", "ingest csv: a dangling symlink", ("ingest", "csv", "in.csv"),
                   special={"in.csv": "symlink:nowhere.csv"})  # fmt: skip
    yield BadInput("io", "ingest csv: /dev/null (empty)", ("ingest", "csv", "/dev/null"))
    # A truth file with a byte-order mark is good: evaluate gets past it to Elasticsearch (not listening: exit 1).
    bom = b"\xef\xbb\xbfstart,end\n2024-01-01T00:00:00Z,2024-01-01T01:00:00Z\n"
    yield BadInput("io", "evaluate --truth: a byte-order mark is accepted", readers["evaluate --truth"],
                   {"in.txt": bom}, exit_code=1)  # fmt: skip
    writers = {
        "init --out": ("init", "--force", "--out"),
        "simulate --truth": ("simulate", "--hours", "30", "--queries", "2", "--nodes", "1", "--truth"),
    }
    for writer, args in writers.items():
        yield BadInput("io", f"{writer}: a full device", (*args, "/dev/full"), exit_code=1)
        yield BadInput("io", f"{writer}: a missing directory", (*args, "nowhere/out.txt"))
        yield BadInput("io", f"{writer}: a directory", (*args, "out"), special={"out": "dir"})
        yield BadInput("io", f"{writer}: a symlink into a missing directory", (*args, "out"),
                       special={"out": "symlink:nowhere/out.txt"})  # fmt: skip
    yield BadInput("io", "init --out: a named pipe without a reader", ("init", "--force", "--out", "out"),
                   special={"out": "fifo"}, exit_code=1, bound_s=PIPE_BOUND_S)  # fmt: skip
    yield BadInput("io", "kibana export --out: a missing directory", ("kibana", "export", "--out", "no/x.ndjson"))
    yield BadInput("io", "report --out: a directory", ("report", "--out", "out"), special={"out": "dir"})
    yield BadInput("io", "report --png: a missing directory", ("report", "--png", "no/x.png"))


def all_inputs() -> list[BadInput]:
    return [
        *csv_inputs(),
        *collectd_inputs(),
        *config_inputs(),
        *env_inputs(),
        *option_inputs(),
        *bound_inputs(),
        *secret_inputs(),
        *io_inputs(),
    ]

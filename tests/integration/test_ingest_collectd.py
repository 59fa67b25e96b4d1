"""`atlas ingest collectd` on the real node with a real collectd daemon (Debian's collectd-core): what its csv
plugin writes reaches Elasticsearch value for value, named as `ingest rrd` names it; what its write_http plugin
posts to `--listen` gives the same documents; collectd's 10 s samples and a 60 s CSV source, both with jitter and
gaps, land in the same hourly buckets; a corrupt file writes nothing."""

from __future__ import annotations

import grp
import itertools
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner
from elasticsearch import Elasticsearch, helpers

from atlas import es_client
from atlas.cli import cli
from atlas.reference import reference_window
from atlas.settings import load_settings
from atlas.surprise import compute_window_surprise
from tests.integration.test_ingest_rrd import hourly_averages
from tests.parity import with_top_series
from tests.unit.test_notify import closed_port

pytestmark = pytest.mark.integration

COLLECTD = "/usr/sbin/collectd"
T0 = 1714557600  # 2024-05-01T10:00:00Z, on the hour
HOURS = 3
METRIC = "app.latency.p90"


def ingest(es_url: str, kind: str, *args: str) -> tuple[int, dict[str, Any], str]:
    result = CliRunner().invoke(cli, ["--es-url", es_url, "ingest", kind, *args])
    return result.exit_code, json.loads(result.stdout) if result.exit_code == 0 else {}, result.stderr


@dataclass(frozen=True)
class Daemon:
    """A running collectd: the csv plugin's DataDir, its unix socket and when it started (epoch s)."""

    csv_dir: Path
    socket_path: Path
    started: float


def collectd_config(home: Path, plugins: str) -> str:
    return f"""
Hostname "web1"
FQDNLookup false
BaseDir "{home}"
PIDFile "{home}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
Interval 1
# The csv plugin creates a new file with fopen "w" after a stat: with several write threads, a second thread's
# create can truncate a line a first one already appended (1 in 4 runs lost one of 928 values here).
WriteThreads 1
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  PrintSeverity true
  File "{home}/collectd.log"
</Plugin>
{plugins}
LoadPlugin csv
<Plugin csv>
  DataDir "{home}/csv"
  StoreRates true
</Plugin>
"""


@pytest.fixture
def home() -> Iterator[Path]:
    """collectd's BaseDir, with the csv plugin's DataDir in it, removed after the test."""
    # Not pytest's tmp_path: as root that is 0700, and the exec plugin runs its program as nobody.
    path = Path(tempfile.mkdtemp(prefix="atlas-collectd-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def running_collectd(home: Path, plugins: str) -> Iterator[Daemon]:
    """collectd in the foreground with `plugins` (config text) and the csv plugin, stopped with SIGTERM after (its
    files stay in `home`)."""
    config = home / "collectd.conf"
    config.write_text(collectd_config(home, plugins.replace("@HOME@", str(home))))
    (home / "put.sh").write_text(EXEC_SCRIPT)
    (home / "put.sh").chmod(0o755)
    proc = subprocess.Popen([COLLECTD, "-f", "-C", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        yield Daemon(home / "csv", home / "sock", time.time())
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        log = (home / "collectd.log").read_text() if (home / "collectd.log").exists() else ""
        assert "[error]" not in log, output.decode() + log


# Prints one known value per second, 0, 1, 2, ..., as collectd's exec plugin protocol has it (N: now).
EXEC_SCRIPT = """#!/bin/sh
i=0
while :; do
  echo "PUTVAL \\"$COLLECTD_HOSTNAME/app-blue/latency-p90\\" interval=1 N:$i"
  i=$((i + 1))
  sleep 1
done
"""


def exec_user() -> str:
    """collectd's exec plugin refuses to run a program as root: nobody when we are root, else ourselves."""
    return "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def wait_for_lines(directory: Path, pattern: str, lines: int, timeout: float = 60.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(directory.glob(pattern))
        # Whole lines after the header; a file collectd has just opened may still be empty.
        if found and found[0].read_text().count("\n") - 1 >= lines:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"collectd wrote no {lines} lines to {directory}/{pattern} in {timeout}s")


def iso_millis(epoch: str) -> str:
    """`1714557600.125` -> `2024-05-01T10:00:00.125Z` (no fraction when it is zero), as documents hold it."""
    whole, _, fraction = epoch.partition(".")
    base = datetime.fromtimestamp(int(whole), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    millis = fraction.ljust(3, "0")[:3]
    return f"{base}.{millis}Z" if int(millis) else f"{base}Z"


def expected_documents(csv_dir: Path) -> dict[tuple[str, str, str], float]:
    """(metric, series, @timestamp) -> value of every finite value the csv plugin wrote for host web1, named by
    collectd's layout (read independently of atlas)."""
    expected: dict[tuple[str, str, str], float] = {}
    for path in sorted(p for p in csv_dir.rglob("*") if p.is_file()):
        lines = path.read_text().splitlines()
        plugin, _, plugin_instance = path.parent.name.partition("-")
        kind, _, type_instance = path.name[: -len("-YYYY-MM-DD")].partition("-")
        prefix = ".".join(p for p in (plugin, kind, type_instance) if p)
        series = f"web1/{plugin_instance}" if plugin_instance else "web1"
        sources = lines[0].split(",")[1:]
        for fields in (line.split(",") for line in lines[1:]):
            for ds, text in zip(sources, fields[1:], strict=True):
                if text not in ("nan", "-nan"):
                    expected[(f"{prefix}.{ds}" if len(sources) > 1 else prefix, series, iso_millis(fields[0]))] = float(
                        text
                    )
    return expected


def stored_documents(es: Elasticsearch, index: str) -> dict[tuple[str, str, str], float]:
    """(metric, series, @timestamp) -> value of every document of `index`."""
    hits = helpers.scan(es, index=index, size=5000)
    return {
        (h["_source"]["metric"], h["_source"]["query"], h["_source"]["@timestamp"]): h["_source"]["value"] for h in hits
    }


def test_a_running_collectd_reaches_elasticsearch_value_for_value(
    es: Elasticsearch, es_url: str, index_name: str, home: Path
) -> None:
    plugins = f"""
LoadPlugin load
LoadPlugin memory
LoadPlugin cpu
LoadPlugin exec
<Plugin exec>
  Exec "{exec_user()}" "@HOME@/put.sh"
</Plugin>
"""
    with running_collectd(home, plugins) as daemon:
        wait_for_lines(daemon.csv_dir / "web1" / "app-blue", "latency-p90-*", 5)
        wait_for_lines(daemon.csv_dir / "web1" / "load", "load-*", 5)
        wait_for_lines(daemon.csv_dir / "web1" / "cpu-0", "cpu-idle-*", 5)  # the first rate is unknown (nan)
        stopped = time.time()
        code, report, err = ingest(es_url, "collectd", str(daemon.csv_dir), "--index", index_name)
        assert code == 0, err
    # Read independently once collectd has stopped: it kept appending while the import ran, and the import read
    # each file up to where its check stopped, so each series' documents are the first of its finite values.
    expected = expected_documents(daemon.csv_dir)
    got = stored_documents(es, index_name)
    assert (report["rows"], report["indexed"], report["replaced"]) == (len(got), len(got), 0)

    names = {(m, s) for m, s, _ in got}
    assert {
        (METRIC, "web1/blue"),
        ("load.load.shortterm", "web1"),
        ("load.load.midterm", "web1"),
        ("load.load.longterm", "web1"),
        ("memory.memory.used", "web1"),
        ("cpu.cpu.idle", "web1/0"),
    } <= names

    # Every document is one finite value of one line, with its time to the millisecond, and no line is skipped.
    for metric, series in names:
        want = sorted((t, v) for (m, s, t), v in expected.items() if (m, s) == (metric, series))
        have = sorted((t, v) for (m, s, t), v in got.items() if (m, s) == (metric, series))
        assert have == want[: len(have)], (metric, series)

    # The exec plugin's known values: 0, 1, 2, ... one a second, stamped by collectd while the test ran.
    known = sorted((t, v) for (m, s, t), v in got.items() if m == METRIC)
    assert len(known) >= 5
    assert [v for _, v in known] == [float(i) for i in range(len(known))]
    instants = [datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t, _ in known]
    assert daemon.started - 1 <= instants[0] and instants[-1] <= stopped + 1
    gaps = [b - a for a, b in itertools.pairwise(instants)]
    assert all(0 < gap <= 10 for gap in gaps), gaps
    print(
        f"collectd run: {len(got)} documents, {len(names)} series, {len(known)} exec intervals"
        f" ({instants[-1] - instants[0]:.1f}s), {len(got)} values checked against {len(expected)} in the files"
    )


def putval(socket_path: Path, lines: list[str]) -> None:
    """Send PUTVAL commands to collectd's unixsock plugin, one at a time, each answered `0 Success...`."""
    deadline = time.monotonic() + 30
    while not socket_path.exists():
        assert time.monotonic() < deadline, "collectd's unixsock plugin made no socket"
        time.sleep(0.1)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(socket_path))
        stream = sock.makefile("rw")
        for line in lines:
            stream.write(line + "\n")
            stream.flush()
            answer = stream.readline()
            assert answer.startswith("0 "), (line, answer)


def jittered(step: int, jitter: float, gaps: list[tuple[int, int]], seed: int) -> dict[Decimal, float]:
    """Epoch seconds (milliseconds exact) -> known value, every `step` s over HOURS hours, each instant moved by up
    to +-`jitter` s (across hour boundaries too; the first one back into the hour before T0), none inside `gaps`
    (seconds after T0, end excluded)."""
    rng = random.Random(seed)
    points: dict[Decimal, float] = {}
    for k in range(HOURS * 3600 // step):
        offset = k * step
        shift = rng.randint(int(-jitter * 1000), int(jitter * 1000)) if k else int(-jitter * 1000)
        moved = Decimal(T0 + offset) + Decimal(shift) / 1000
        value = round(rng.uniform(10, 90) + 40 * (offset // 3600 == HOURS - 1), 3)  # the last hour jumps
        if not any(start <= offset < end for start, end in gaps):
            points[moved] = value
    return points


def hour_means(points: dict[Decimal, float]) -> dict[int, float]:
    hours: dict[int, list[float]] = {}
    for t, v in points.items():
        hours.setdefault(int(t // 3600) * 3600, []).append(v)
    return {hour: sum(vs) / len(vs) for hour, vs in hours.items()}


def test_collectds_10s_and_a_60s_source_share_hourly_buckets(
    es: Elasticsearch, es_url: str, index_name: str, home: Path
) -> None:
    # 10 s samples +-3 s with two gaps (one of 25 minutes), 60 s samples +-20 s with a 50-minute gap; both cross
    # the hour boundaries both ways.
    ten = jittered(10, 3.0, [(1200, 2700), (7190, 7210)], seed=10)
    sixty = jittered(60, 20.0, [(5400, 8400)], seed=60)
    group = grp.getgrgid(os.getegid()).gr_name
    plugins = f'LoadPlugin unixsock\n<Plugin unixsock>\n  SocketFile "@HOME@/sock"\n  SocketGroup "{group}"\n</Plugin>'
    with running_collectd(home, plugins) as daemon:
        putval(
            daemon.socket_path,
            [f'PUTVAL "web1/app-blue/latency-p90" interval=10 {t}:{v}' for t, v in sorted(ten.items())],
        )
        written = wait_for_lines(daemon.csv_dir / "web1" / "app-blue", "latency-p90-*", len(ten))
        code, report, err = ingest(es_url, "collectd", str(written), "--index", index_name)
    assert code == 0, err
    assert report["rows"] == len(ten)
    csv = Path(tempfile.mkdtemp(prefix="atlas-collectd-csv-")) / "sixty.csv"
    csv.write_text("timestamp,metric,series,value\n" + "".join(f"{t},{METRIC},csv1,{v}\n" for t, v in sixty.items()))
    code, report, err = ingest(es_url, "csv", str(csv), "--index", index_name)
    shutil.rmtree(csv.parent)
    assert code == 0, err
    assert report["rows"] == len(sixty)

    got = hourly_averages(es, index_name)
    want = {("web1/blue", h): m for h, m in hour_means(ten).items()} | {
        ("csv1", h): m for h, m in hour_means(sixty).items()
    }
    assert sorted(got) == sorted(want)
    assert got == pytest.approx(want, rel=1e-12)
    assert {h for _, h in got} == {T0 - 3600, *(T0 + 3600 * h for h in range(HOURS))}  # jitter crossed 10:00 back

    # atlas's own surprise request: the last hour against the mean of the two before, per series, equals the
    # reference's and the hand computation from the known values.
    settings = load_settings(
        None,
        {
            "es.urls": [es_url],
            "source.index": index_name,
            "surprise.window": "1h",
            "surprise.mode": "last",
            "surprise.normalization": "none",
            "surprise.baseline_window": 2,  # the mean of two buckets is also their median
            "surprise.top_series": 10,
        },
    )
    end = datetime.fromtimestamp(T0 + HOURS * 3600, UTC)
    client = es_client.connect(settings.es)
    result = compute_window_surprise(client, settings, [METRIC], end)
    actual = {s.series: s.surprise for s in with_top_series(client, settings, result[0]).top_series}
    by_hand = {}
    for series, points in (("web1/blue", ten), ("csv1", sixty)):
        means = hour_means(points)
        last = T0 + (HOURS - 1) * 3600
        by_hand[series] = abs(means[last] - (means[last - 3600] + means[last - 7200]) / 2)
    frame = pd.DataFrame(
        [
            (datetime.fromtimestamp(float(t), UTC), METRIC, series, v)
            for series, points in (("web1/blue", ten), ("csv1", sixty))
            for t, v in points.items()
        ],
        columns=["timestamp", "metric", "series", "value"],
    )
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    reference = reference_window(frame, settings.surprise, end)[METRIC]
    assert actual == pytest.approx(by_hand, rel=1e-9)
    assert actual == pytest.approx(dict(reference.series_surprise), rel=1e-9)
    print(
        f"mismatched timestamps: {len(ten)} collectd values (10 s), {len(sixty)} CSV values (60 s),"
        f" {len(got)} series-hours compared, surprise {actual}"
    )


def test_a_corrupt_collectd_file_next_to_good_ones_writes_nothing(
    es: Elasticsearch, es_url: str, index_name: str, tmp_path: Path
) -> None:
    good = tmp_path / "web1" / "load"
    good.mkdir(parents=True)
    (good / "load-2024-05-01").write_text(
        "epoch,shortterm,midterm,longterm\n" + "".join(f"{T0 + 10 * i}.000,0.5,0.4,0.3\n" for i in range(100))
    )
    bad = tmp_path / "web1" / "memory" / "memory-used-2024-05-01"
    bad.parent.mkdir()
    bad.write_text("epoch,value\n1714557600.000,1.0\n1714557610.000,2.0\n17145576")  # cut in the middle of a line
    code, _, err = ingest(es_url, "collectd", str(tmp_path), "--index", index_name)
    assert (code, err.count("\n")) == (2, 1), err
    assert err.startswith(f"Error: {bad}:4: the last line has no line end"), err
    assert not es.indices.exists(index=index_name)


def test_write_http_posts_to_listen_give_the_csv_plugins_documents(
    es: Elasticsearch, es_url: str, index_name: str, home: Path
) -> None:
    port = closed_port()
    command = [sys.executable, "-m", "atlas", "--es-url", es_url, "ingest", "collectd"]
    listener = subprocess.Popen(
        [*command, "--listen", f"127.0.0.1:{port}", "--index", index_name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert listener.stderr is not None
        assert listener.stderr.readline() == f"listening on http://127.0.0.1:{port}/\n"
        bad = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b'[{"values": [1]}]', method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=10)
        assert (refused.value.code, refused.value.read()) == (
            400,
            b"value list 1: host null is not a printable name of up to 512 bytes\n",
        )
        plugins = f"""
LoadPlugin load
LoadPlugin memory
LoadPlugin exec
<Plugin exec>
  Exec "{exec_user()}" "@HOME@/put.sh"
</Plugin>
LoadPlugin write_http
<Plugin write_http>
  <Node "atlas">
    URL "http://127.0.0.1:{port}/collectd"
    Format "JSON"
    StoreRates true
  </Node>
</Plugin>
"""
        with running_collectd(home, plugins) as daemon:
            wait_for_lines(daemon.csv_dir / "web1" / "app-blue", "latency-p90-*", 5)
        expected = expected_documents(daemon.csv_dir)  # collectd has stopped: write_http flushed its last buffer
    finally:
        listener.send_signal(signal.SIGTERM)  # a service manager's stop: what was received is indexed first
        out, err = listener.communicate(timeout=60)
    assert listener.returncode == 0, err
    report = json.loads(out)
    assert err.splitlines() == [
        "refused a post from 127.0.0.1: value list 1: host null is not a printable name of up to 512 bytes",
        "stopped; indexing what was received",
    ]
    got = stored_documents(es, index_name)
    assert (report["refused"], report["indexed"]) == (1, len(got))
    assert sorted(got) == sorted(expected)
    # JSON carries every digit; the csv plugin writes 6 decimals (`%lf`).
    assert all(abs(got[key] - expected[key]) <= 5e-7 * max(1.0, abs(expected[key])) for key in got)
    known = [v for (m, _, _), v in sorted(got.items(), key=lambda kv: kv[0][2]) if m == METRIC]
    assert known == [float(i) for i in range(len(known))] and len(known) >= 5
    print(f"write_http run: {report['posts']} posts, {len(got)} documents as the csv plugin's, {len(known)} intervals")

"""One node of the embedded cluster: its config directory, keystore and owner, its launch, and why it failed."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from atlas.distributions import Distribution
from atlas.errors import EsUnavailable, ToolMissing

CLUSTER_NAME = "atlas-embedded"
TRANSPORT_OFFSET = 100  # a node's transport port: its HTTP port + this
PID_FILE = "node.pid"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Lines that say a node failed without saying why; the reason is the line before them.
_NOISE = re.compile(r"([\w ]+:$|at |\.\.\. \d+ more|ERROR: (?:Elasticsearch|OpenSearch) |See logs)")
_LOG_ERROR = re.compile(r"\]\[(?:ERROR|FATAL)\s*\]\[[^]]*\] (?:\[[^]]*\] )?(.+)")


@dataclass(frozen=True)
class NodeOptions:
    """What a caller adds to each node: elasticsearch.yml settings, keystore entries, files copied into config/."""

    settings: Mapping[str, object] = field(default_factory=dict)
    keystore: Mapping[str, str] = field(default_factory=dict)
    config_files: Mapping[str, Path] = field(default_factory=dict)
    # How start asks a secured node for its health: a user and password, and the CA that signed its certificate.
    probe_user: tuple[str, str] | None = None
    probe_ca: Path | None = None


def write_node_config(
    node_dir: Path,
    es_home: Path,
    dist: Distribution,
    index: int,
    nodes: int,
    port: int,
    heap: str,
    options: NodeOptions,
) -> None:
    for sub in ("config", "data", "logs", "tmp"):
        (node_dir / sub).mkdir(parents=True, exist_ok=True)
    names = [f"node-{i}" for i in range(nodes)]
    transports = [f"127.0.0.1:{port + TRANSPORT_OFFSET + i}" for i in range(nodes)]
    settings: dict[str, object] = {
        "cluster.name": CLUSTER_NAME,
        "node.name": names[index],
        "network.host": "127.0.0.1",
        "http.port": port + index,
        # 6.x names the transport port transport.tcp.port; 7.0 renamed it.
        ("transport.tcp.port" if dist.major == 6 else "transport.port"): port + TRANSPORT_OFFSET + index,
        "path.data": str(node_dir / "data"),
        "path.logs": str(node_dir / "logs"),
        "cluster.routing.allocation.disk.threshold_enabled": False,
        "action.destructive_requires_name": False,
    }
    if dist.has_xpack:  # the integ-test-zip of 7.10 has no x-pack and refuses its settings
        settings["xpack.security.enabled"] = False
    if dist.major == 6:  # Watcher needs a trial (or paid) licence; ML's native process does not start here
        settings |= {"xpack.license.self_generated.type": "trial", "xpack.ml.enabled": False}
    if nodes == 1:
        settings["discovery.type"] = "single-node"
    elif dist.major == 6:
        settings["discovery.zen.ping.unicast.hosts"] = transports
        settings["discovery.zen.minimum_master_nodes"] = nodes // 2 + 1
    else:
        settings["discovery.seed_hosts"] = transports
        # OpenSearch 2.x renamed it (the old name still works, with a deprecation warning at every start)
        initial = "cluster.initial_cluster_manager_nodes" if dist.is_opensearch else "cluster.initial_master_nodes"
        settings[initial] = names
    settings |= dict(options.settings)
    conf = node_dir / "config"
    # JSON scalars and lists are valid YAML, and quote paths safely.
    (conf / f"{dist.product}.yml").write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in settings.items()))
    # Our own jvm.options: the distribution's writes a GC log relative to the working directory, and 6.x's names
    # a garbage collector that JDK 17 no longer has.
    tmpdir = f"-Djava.io.tmpdir=${{{dist.env_prefix}_TMPDIR}}"
    jvm = ["-XX:+UseG1GC", tmpdir, "-XX:+ExitOnOutOfMemoryError", f"-Xms{heap}", f"-Xmx{heap}"]
    if dist.is_opensearch:  # as OpenSearch's own jvm.options: the common pool's threads under its security manager
        factory = "org.opensearch.secure_sm.SecuredForkJoinWorkerThreadFactory"
        jvm.append(f"-Djava.util.concurrent.ForkJoinPool.common.threadFactory={factory}")
    (conf / "jvm.options").write_text("\n".join(jvm) + "\n")
    shutil.copyfile(es_home / "config" / "log4j2.properties", conf / "log4j2.properties")
    for name, source in options.config_files.items():
        shutil.copyfile(source, conf / name)


def write_keystore(
    node_dir: Path, es_home: Path, java_home: Path, dist: Distribution, entries: Mapping[str, str]
) -> None:
    """A fresh keystore in the node's config/ holding `entries` (secure settings), or none when there are none."""
    keystore = node_dir / "config" / f"{dist.product}.keystore"
    keystore.unlink(missing_ok=True)
    if not entries:
        return
    tool = str(es_home / "bin" / f"{dist.product}-keystore")
    env = _launch_env(node_dir, java_home, dist)
    for args, stdin in [(["create"], ""), *((["add", "-x", "-f", name], value) for name, value in entries.items())]:
        proc = subprocess.run([tool, *args], input=stdin, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:  # never print stdin: it is a secret
            reason = _last_meaningful_line(proc.stdout + proc.stderr) or f"exit code {proc.returncode}"
            raise EsUnavailable(f"{dist.product}-keystore {args[0]} failed for {node_dir.name}: {reason}")


def give_to_unprivileged_user(node_dir: Path) -> None:
    if os.geteuid() == 0:
        uid, gid = _unprivileged_ids()
        for root, dirs, files in os.walk(node_dir):
            os.chown(root, uid, gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def _unprivileged_ids() -> tuple[int, int]:
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


def _launch_env(node_dir: Path, java_home: Path, dist: Distribution) -> dict[str, str]:
    prefix = dist.env_prefix
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(node_dir),
        f"{prefix}_JAVA_HOME": str(java_home),
        "JAVA_HOME": str(java_home),  # what versions before 7.12 read
        f"{prefix}_PATH_CONF": str(node_dir / "config"),
        f"{prefix}_TMPDIR": str(node_dir / "tmp"),  # also puts node_dir on the JVM's command line, which stop checks
    }


def launch(node_dir: Path, es_home: Path, java_home: Path, dist: Distribution) -> subprocess.Popen[bytes]:
    env = _launch_env(node_dir, java_home, dist)
    cmd = [str(es_home / "bin" / dist.product), "-d", "-p", str(node_dir / PID_FILE)]
    if os.geteuid() == 0:  # Elasticsearch and OpenSearch refuse to run as root
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise ToolMissing("setpriv not found: install util-linux (apt-get install util-linux)")
        uid, gid = _unprivileged_ids()
        cmd = [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *cmd]
    with open(node_dir / "launch.log", "wb") as out:
        return subprocess.Popen(
            cmd, cwd=node_dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )


def others_can_enter(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def await_launch(proc: subprocess.Popen[bytes], node_dir: Path, deadline: float) -> str:
    """Wait for one `elasticsearch -d` launcher; returns why the node failed, or "" when it started."""
    try:
        code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return f"{node_dir.name} did not start in time (log: {es_log(node_dir)})"
    if code == 0:
        return ""
    line, log = logged_reason(node_dir, node_dir / "launch.log", es_log(node_dir))
    return f"{node_dir.name}: {line or f'exit code {code}'} (log: {log})"


def es_log(node_dir: Path) -> Path:
    return node_dir / "logs" / f"{CLUSTER_NAME}.log"


def logged_reason(node_dir: Path, *logs: Path) -> tuple[str, Path]:
    """The first meaningful failure line of `logs` (in that order) and the log it is from; else "" and the last."""
    for log in logs:
        line = _last_meaningful_line(log.read_text(errors="replace")) if log.is_file() else ""
        if line:
            return line, log
    return "", logs[-1]


def all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _last_meaningful_line(text: str) -> str:
    """The reason in a launcher's or log's text: its last ERROR log entry, else its last non-boilerplate line."""
    lines = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    errors = [m.group(1) for m in map(_LOG_ERROR.search, lines) if m]
    meaningful = errors or [line for line in lines if line and not _NOISE.match(line)]
    return meaningful[-1][:500] if meaningful else ""

"""Start, stop and report on the embedded cluster: local nodes of one of Elastic's distributions or of OpenSearch."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from atlas.distributions import DEFAULT_VERSION, Distribution, distribution, ensure_distribution
from atlas.embedded_nodes import (
    PID_FILE,
    TRANSPORT_OFFSET,
    NodeOptions,
    all_pids,
    await_launch,
    cmdline,
    es_log,
    give_to_unprivileged_user,
    launch,
    logged_reason,
    others_can_enter,
    write_keystore,
    write_node_config,
)
from atlas.errors import ConfigError, EsUnavailable, ToolMissing

_STATE_FILE = "cluster.json"
_HEAP = re.compile(r"[1-9][0-9]{0,5}[mg]")


@dataclass(frozen=True)
class ClusterStatus:
    is_up: bool
    url: str
    nodes: int
    version: str | None
    pids: tuple[int, ...]


@dataclass(frozen=True)
class _State:
    url: str
    nodes: int
    port: int
    pids: tuple[int, ...]
    node_dirs: tuple[str, ...]
    version: str = DEFAULT_VERSION


def default_home() -> Path:
    """atlas's own directory: $ATLAS_HOME, else ~/.atlas (/var/lib/atlas for root, whose home nobody can enter)."""
    if os.environ.get("ATLAS_HOME"):
        return Path(os.environ["ATLAS_HOME"]).expanduser()
    return Path("/var/lib/atlas") if os.geteuid() == 0 else Path.home() / ".atlas"


def default_data_dir(version: str) -> Path:
    """Where a version's nodes keep their data by default: $ATLAS_HOME/es for the default version, es-<v> else."""
    return default_home() / ("es" if version == DEFAULT_VERSION else f"es-{version}")


def start_cluster(
    *,
    data_dir: Path,
    dist_dir: Path,
    nodes: int = 1,
    port: int | None = None,
    heap: str = "1g",
    version: str = DEFAULT_VERSION,
    options: NodeOptions | None = None,
    timeout_s: float = 180.0,
) -> tuple[ClusterStatus, bool]:
    """Start `nodes` local nodes (HTTP port+i; by default the distribution's port) and wait until each node's port
    answers with yellow health; the bool says it was already running."""
    dist = distribution(version)
    port = dist.default_port if port is None else port
    options = options or NodeOptions()
    _validate(nodes, port, heap)
    data_dir = data_dir.resolve()
    _refuse_other_version(data_dir, dist)
    deadline = time.monotonic() + timeout_s
    state = _read_state(data_dir)
    if state is not None:
        alive = [pid for pid in state.pids if _is_ours(pid, data_dir)]
        if alive and (state.nodes, state.port, state.version) != (nodes, port, version):
            raise ConfigError(
                f"already running with {state.nodes} node(s) of {state.version} at {state.url};"
                " run `atlas es stop` first"
            )
        if alive and len(alive) == len(state.pids):
            _wait_for_health(state.url, nodes, deadline, options)
            return cluster_status(data_dir, options), True
        stop_cluster(data_dir)  # stale: some or all nodes died
    _refuse_fewer_nodes(data_dir, nodes)
    for i in range(nodes):
        _require_free_port(port + i)
        _require_free_port(port + TRANSPORT_OFFSET + i)
    java_home = _java_home()
    es_home = ensure_distribution(dist, dist_dir)
    node_dirs = [data_dir / f"node-{i}" for i in range(nodes)]
    for i, node_dir in enumerate(node_dirs):
        write_node_config(node_dir, es_home, dist, i, nodes, port, heap, options)
        write_keystore(node_dir, es_home, java_home, dist, options.keystore)
        give_to_unprivileged_user(node_dir)
    (data_dir / "version").write_text(version + "\n")
    if os.geteuid() == 0:
        for path in (es_home, data_dir):
            if not others_can_enter(path):
                raise ConfigError(
                    f"{path} is not reachable by user nobody, which runs the nodes when atlas runs as root; "
                    "use --data / ATLAS_HOME below a directory others can enter (default /var/lib/atlas)"
                )
    scheme = "https" if options.settings.get("xpack.security.http.ssl.enabled") else "http"
    node_urls = [f"{scheme}://127.0.0.1:{port + i}" for i in range(nodes)]  # node i answers on port + i
    url = node_urls[0]
    try:
        launched = [launch(node_dir, es_home, java_home, dist) for node_dir in node_dirs]
        # All launchers first: with several nodes each one waits until a quorum has formed.
        failures = [await_launch(proc, node_dir, deadline) for proc, node_dir in zip(launched, node_dirs, strict=True)]
        reasons = [reason for reason in failures if reason]
        if reasons:
            raise EsUnavailable(f"{dist.title} did not start at {url}: " + "; ".join(reasons))
        pids = tuple(_await_pid(node_dir, data_dir, deadline) for node_dir in node_dirs)
        _write_state(data_dir, _State(url, nodes, port, pids, tuple(map(str, node_dirs)), version))
        # A node joins the cluster before it opens its HTTP port: ask each node, not only the first.
        for node_url in node_urls:
            _wait_for_health(node_url, nodes, deadline, options)
    except BaseException:
        _kill_nodes(data_dir)
        raise
    return cluster_status(data_dir, options), False


def stop_cluster(data_dir: Path, timeout_s: float = 60.0) -> tuple[int, ...]:
    """Stop the nodes this data_dir's cluster.json and pid files name (SIGTERM, SIGKILL after timeout_s)."""
    data_dir = data_dir.resolve()
    state = _read_state(data_dir)
    from_files = [_read_pid(path) or 0 for path in sorted(data_dir.glob(f"node-*/{PID_FILE}"))]
    candidates = dict.fromkeys([*(state.pids if state else ()), *from_files])  # node order, no duplicates
    pids = tuple(pid for pid in candidates if _is_ours(pid, data_dir))
    _signal_and_wait(pids, data_dir, timeout_s)
    _forget(data_dir)
    return pids


def cluster_status(data_dir: Path, options: NodeOptions | None = None) -> ClusterStatus:
    """What runs for data_dir: is_up when the recorded nodes live and the HTTP port answers; the version as
    --version names it (7.10.2, opensearch-2.19.6)."""
    data_dir = data_dir.resolve()
    state = _read_state(data_dir)
    if state is None:
        return ClusterStatus(is_up=False, url="", nodes=0, version=None, pids=())
    pids = tuple(pid for pid in state.pids if _is_ours(pid, data_dir))
    health = _try_get_json(f"{state.url}/_cluster/health", 10.0, options) if pids else None
    if health is None or "number_of_nodes" not in health:
        return ClusterStatus(is_up=False, url=state.url, nodes=0, version=None, pids=pids)
    local = _try_get_json(f"{state.url}/_nodes/_local?filter_path=nodes.*.version", 10.0, options) or {}
    number = next((str(node["version"]) for node in local.get("nodes", {}).values() if "version" in node), None)
    # named as --version names it: a bare number is Elasticsearch's
    version = f"opensearch-{number}" if number and state.version.startswith("opensearch-") else number
    return ClusterStatus(is_up=True, url=state.url, nodes=int(health["number_of_nodes"]), version=version, pids=pids)


def _validate(nodes: int, port: int, heap: str) -> None:
    if not 1 <= nodes <= 9:
        raise ConfigError(f"--nodes must be between 1 and 9, got {nodes}")
    if not 1024 <= port <= 65000:
        raise ConfigError(f"--port must be between 1024 and 65000, got {port}")
    if not _HEAP.fullmatch(heap):
        raise ConfigError(f"--heap must be a size like 512m or 1g, got {heap!r}")


def _refuse_other_version(data_dir: Path, dist: Distribution) -> None:
    marker = data_dir / "version"
    held = marker.read_text().strip() if marker.is_file() else None
    if held and held != dist.version and any(data_dir.glob("node-*/data/*")):
        raise ConfigError(f"{data_dir} holds the data of {held}, not {dist.version}; use another --data directory")


def _java_home() -> Path:
    env = os.environ.get("JAVA_HOME")
    if env and (Path(env) / "bin" / "java").is_file():
        return Path(env)
    java = shutil.which("java")
    if java is None:
        raise ToolMissing("java not found: install a JDK 17 (apt-get install openjdk-17-jdk-headless)")
    return Path(os.path.realpath(java)).parent.parent


def _refuse_fewer_nodes(data_dir: Path, nodes: int) -> None:
    # A node left out of a cluster it voted in would leave the others waiting for a quorum forever.
    extra = [p.parent.name for p in data_dir.glob("node-*/data") if int(p.parent.name[5:]) >= nodes]
    if any(any((data_dir / name / "data").iterdir()) for name in extra):
        raise ConfigError(
            f"{data_dir} holds data of a cluster with more than {nodes} node(s) ({', '.join(sorted(extra))});"
            f" start it with more --nodes or remove those directories"
        )


def _require_free_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Elasticsearch binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise EsUnavailable(
                f"port {port} on 127.0.0.1 is already in use; free it or choose another --port"
            ) from exc


def _await_pid(node_dir: Path, data_dir: Path, deadline: float) -> int:
    """The node's pid, once it wrote its pid file: before 8.0 `elasticsearch -d` returns before the node has
    started, so a node can still fail (or still be booting) after its launcher said 0."""
    while True:
        pid = _read_pid(node_dir / PID_FILE)
        if pid is not None and _is_ours(pid, data_dir):
            return pid
        booting = any(_is_ours(p, data_dir) and f"{node_dir}{os.sep}".encode() in cmdline(p) for p in all_pids())
        if not booting or time.monotonic() >= deadline:
            line, _ = logged_reason(node_dir, es_log(node_dir), node_dir / "launch.log")
            why = "did not start in time" if booting else f"stopped: {line or 'no reason logged'}"
            raise EsUnavailable(f"{node_dir.name} {why} (log: {es_log(node_dir)})")
        time.sleep(0.2)


def _wait_for_health(url: str, nodes: int, deadline: float, options: NodeOptions | None) -> None:
    while True:
        wait_s = max(1, int(deadline - time.monotonic()))
        query = f"wait_for_status=yellow&wait_for_nodes={nodes}&timeout={wait_s}s"
        health = _try_get_json(f"{url}/_cluster/health?{query}", wait_s + 10.0, options)
        if health is not None and health.get("timed_out") is False:
            return
        if time.monotonic() >= deadline:
            seen = f"status {health.get('status')}, {health.get('number_of_nodes')} node(s)" if health else "no answer"
            raise EsUnavailable(f"{url} did not reach yellow health with {nodes} node(s) in time ({seen})")
        time.sleep(0.5)


def _try_get_json(url: str, timeout_s: float, options: NodeOptions | None = None) -> dict[str, Any] | None:
    """GET url's JSON object; error answers with a JSON body (a 408 health timeout) count, no answer is None."""
    request = urllib.request.Request(url)
    # No proxy: urllib would send 127.0.0.1 through $http_proxy, and the embedded node is always local.
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if options is not None and options.probe_user is not None:
        token = base64.b64encode(":".join(options.probe_user).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    if options is not None and options.probe_ca is not None:
        context = ssl.create_default_context(cafile=str(options.probe_ca))
        handlers.append(urllib.request.HTTPSHandler(context=context))
    try:
        with urllib.request.build_opener(*handlers).open(request, timeout=timeout_s) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
    except OSError:
        return None
    with contextlib.suppress(ValueError):
        parsed = json.loads(raw)
        if isinstance(parsed, dict):
            return parsed
    return None


def _is_ours(pid: int, data_dir: Path) -> bool:
    """Whether pid is a live Elasticsearch or OpenSearch JVM (or its launcher) for a node directory of data_dir."""
    args = cmdline(pid).split(b"\0")
    marker = f"{data_dir}{os.sep}node-".encode()
    is_server = any(b"org.elasticsearch" in arg or b"org.opensearch" in arg for arg in args)
    return is_server and any(marker in arg for arg in args)


def _signal_and_wait(pids: tuple[int, ...], data_dir: Path, timeout_s: float) -> None:
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        for pid in pids:
            if _is_ours(pid, data_dir):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while any(_is_ours(pid, data_dir) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)


def _kill_nodes(data_dir: Path) -> None:
    """Kill what a failed start launched: its pid files may not exist yet, so look at every process."""
    _signal_and_wait(tuple(pid for pid in all_pids() if _is_ours(pid, data_dir)), data_dir, 0.0)
    _forget(data_dir)


def _forget(data_dir: Path) -> None:
    for path in [data_dir / _STATE_FILE, *data_dir.glob(f"node-*/{PID_FILE}")]:
        path.unlink(missing_ok=True)


def _read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None


def _read_state(data_dir: Path) -> _State | None:
    path = data_dir / _STATE_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
        pids, node_dirs = tuple(map(int, raw["pids"])), tuple(map(str, raw["node_dirs"]))
        version = str(raw.get("version", DEFAULT_VERSION))
        return _State(str(raw["url"]), int(raw["nodes"]), int(raw["port"]), pids, node_dirs, version)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not an atlas cluster state ({exc}); stop the nodes by hand and remove it"
        ) from exc


def _write_state(data_dir: Path, state: _State) -> None:
    tmp = data_dir / f".{_STATE_FILE}.tmp"
    tmp.write_text(json.dumps(asdict(state), indent=2, sort_keys=True) + "\n")
    tmp.replace(data_dir / _STATE_FILE)

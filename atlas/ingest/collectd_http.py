"""Receive what collectd's `write_http` plugin posts (`Format "JSON"`) on an address atlas listens on, and index
each post's values as the csv import's documents, named as `ingest rrd` and the csv plugin's files are named.

A post is a JSON array of value lists, `{"values": [...], "dsnames": [...], "time": <epoch s>, "host", "plugin",
"plugin_instance", "type", "type_instance", ...}`. Each post is checked whole: a bad one is answered 400 and
logged in one line naming the value list and field, and none of its values is indexed; collectd then logs the
failure on its side. Good posts are answered 200 at once and indexed in bulk about once a second (`null`, collectd's
unknown value, is a gap). The listener serves one connection at a time: collectd's write_http posts one buffer at a
time per node, and a second sender is served in turn.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from math import isfinite
from typing import Any

from atlas import es_bulk, indices
from atlas.errors import ConfigError, DataError
from atlas.es_client import EsClient
from atlas.ingest.csv_file import MAX_NAME_BYTES, MAX_YEAR, MIN_YEAR, MetricSample
from atlas.ingest.load import sample_documents
from atlas.ingest.rrd_file import name_collectd, name_data_source
from atlas.settings import SourceSettings

log = logging.getLogger(__name__)

MAX_POST_BYTES = 16 * 1024 * 1024  # write_http's buffer is 4 KiB by default; a post this large is not collectd's
POST_SECONDS = 10.0  # a sender's whole connection (request line, headers, post); never past --duration's end
FLUSH_SECONDS = 1.0  # how long received values wait before one bulk request indexes them
FLUSH_VALUES = 5000  # or this many, whichever comes first
_POLL_SECONDS = 0.2
_NAME_FIELDS = ("host", "plugin", "plugin_instance", "type", "type_instance")


@dataclass(frozen=True)
class ListenReport:
    """What one listening run received and indexed."""

    index: str
    address: str
    seconds: float
    posts: int  # answered 200
    refused: int  # answered 400 (or 413, 405): nothing of them indexed
    indexed: int  # values sent to Elasticsearch, each one document
    unknown: int  # null values: gaps, not documents

    def summary(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "listened": self.address,
            "seconds": round(self.seconds, 3),
            "posts": self.posts,
            "refused": self.refused,
            "indexed": self.indexed,
            "unknown": self.unknown,
        }


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:PORT` for IPv6) -> (host, port); ConfigError naming `--listen` otherwise."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen: {text!r} is not HOST:PORT (e.g. 127.0.0.1:9425)")
    return host, int(port)


def parse_post(body: bytes) -> tuple[list[MetricSample], int]:
    """(samples, unknown values) of one write_http JSON post; DataError naming the value list and field."""
    try:
        lists = json.loads(body.decode("utf-8"))
    except RecursionError:
        raise DataError("JSON nested too deeply for a list of value lists") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"not JSON ({_first_words(exc)})") from None
    except ValueError:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise DataError("a number of thousands of digits: not a value collectd sends") from None
    if not isinstance(lists, list):
        raise DataError('not a JSON array of value lists (write_http\'s Format "JSON")')
    samples: list[MetricSample] = []
    unknown = 0
    for number, item in enumerate(lists, start=1):
        try:
            found, gaps = _value_list(item)
        except DataError as exc:
            raise DataError(f"value list {number}: {exc}") from None
        samples += found
        unknown += gaps
    return samples, unknown


def _value_list(item: Any) -> tuple[list[MetricSample], int]:
    if not isinstance(item, dict):
        raise DataError("not a JSON object")
    names: list[str] = []
    for field in _NAME_FIELDS:
        name = item.get(field, "" if field.endswith("instance") else None)
        if not isinstance(name, str) or not name.isprintable() or len(name.encode("utf-8")) > MAX_NAME_BYTES:
            raise DataError(f"{field} {_shown(name)} is not a printable name of up to {MAX_NAME_BYTES} bytes")
        names.append(name)
    host, plugin, plugin_instance, kind, type_instance = names
    if "-" in plugin or "-" in kind:  # collectd's identifiers split at the first `-`
        raise DataError(f"plugin {plugin!r} or type {kind!r} holds a '-'")
    named = name_collectd(host, _joined(plugin, plugin_instance), _joined(kind, type_instance))
    if named is None:
        raise DataError("host, plugin or type is empty")
    prefix, series = named
    values, sources, when = item.get("values"), item.get("dsnames"), item.get("time")
    if not isinstance(sources, list) or not sources or not all(isinstance(ds, str) and ds for ds in sources):
        raise DataError(f"dsnames {_shown(sources)} is not a list of data source names")
    if len(set(sources)) != len(sources):
        raise DataError(f"dsnames {_shown(sources)} names a data source twice")
    if not isinstance(values, list) or len(values) != len(sources):
        raise DataError(f"values {_shown(values)} is not a list of {len(sources)} (one per dsnames)")
    timestamp = _timestamp(when)
    samples: list[MetricSample] = []
    unknown = 0
    for ds, value in zip(sources, values, strict=True):
        if value is None:
            unknown += 1
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DataError(f"value {_shown(value)} of {ds!r} is not a number or null")
        number = _as_float(value)
        if isfinite(number):  # `nan` never appears in JSON; a huge integer becomes inf: a gap, as in the csv import
            samples.append(MetricSample(timestamp, name_data_source(prefix, sources, ds), series, number))
        else:
            unknown += 1
    return samples, unknown


def _first_words(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 100 else text[:100] + "..."


def _as_float(value: int | float) -> float:
    """A JSON number as a float; an integer too large for one is infinite (not finite, so not a value)."""
    try:
        return float(value)
    except OverflowError:
        return float("inf")


def _joined(name: str, instance: str) -> str:
    return f"{name}-{instance}" if instance else name


def _timestamp(when: Any) -> datetime:
    if isinstance(when, bool) or not isinstance(when, int | float) or not isfinite(_as_float(when)):
        raise DataError(f"time {_shown(when)} is not epoch seconds")
    try:
        timestamp = datetime.fromtimestamp(round(_as_float(when), 3), UTC)  # collectd sends milliseconds (`%.3f`)
    except (OverflowError, OSError, ValueError):
        timestamp = None
    if timestamp is None or not MIN_YEAR <= timestamp.year <= MAX_YEAR:
        raise DataError(f"time {_shown(when)} is outside the years {MIN_YEAR} to {MAX_YEAR} (UTC)")
    return timestamp


def _shown(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (ValueError, RecursionError):  # an integer past Python's conversion limit, a deep nesting
        text = f"a {type(value).__name__} too large to show"
    return text if len(text) <= 60 else f"{text[:60]}... ({len(text)} characters)"


class _Receiver:
    """The values of good posts waiting for the next bulk request, and the counts for the report."""

    def __init__(self) -> None:
        self.pending: list[MetricSample] = []
        self.posts = self.refused = self.indexed = self.unknown = 0
        self.deadline: float | None = None  # time.monotonic() of --duration's end
        self._lock = threading.RLock()  # cut() may run in a signal handler while this thread holds it
        self._active: socket.socket | None = None  # the connection being served
        self.cut_short = False  # the active connection was shut at its deadline or by a stop

    def serving(self, connection: socket.socket | None) -> None:
        with self._lock:
            self._active, self.cut_short = connection, False

    def cut(self) -> None:
        """Shut the connection being served, if any: its reads end at once (a sender's slowness bounds nothing)."""
        with self._lock:
            if self._active is not None:
                self.cut_short = True
                with contextlib.suppress(OSError):  # already closed
                    self._active.shutdown(socket.SHUT_RDWR)

    def connection_seconds(self) -> float:
        """How long the next connection may take: POST_SECONDS, and never past --duration's end."""
        if self.deadline is None:
            return POST_SECONDS
        return max(0.0, min(POST_SECONDS, self.deadline - time.monotonic()))

    def take(self, handler: BaseHTTPRequestHandler) -> tuple[int, str]:
        """(HTTP status, reason) for one request."""
        if handler.command != "POST":
            return 405, "only POST: point collectd's write_http plugin here"
        try:
            length = int(handler.headers.get("Content-Length", ""))
        except ValueError:
            return 411, "a post needs a Content-Length"
        if not 0 <= length <= MAX_POST_BYTES:
            return 413, f"a post of {length} bytes is over {MAX_POST_BYTES}"
        try:
            body = handler.rfile.read(length)
        except OSError as exc:  # reset by the sender, or by the kernel after a cut
            return 400, f"the post's connection failed: {exc}"
        if len(body) < length:
            return 400, f"the post ended after {len(body)} of its {length} bytes"
        try:
            samples, unknown = parse_post(body)
        except DataError as exc:
            return 400, str(exc)
        self.pending += samples
        self.unknown += unknown
        return 200, "ok"


def receive(
    client: EsClient,
    source: SourceSettings,
    index: str,
    address: tuple[str, int],
    *,
    duration: timedelta | None = None,
    ready: Callable[[str], None] | None = None,
) -> ListenReport:
    """Listen on `address` until `duration` has passed, Ctrl-C (SIGINT) or SIGTERM, indexing good posts into `index`
    about once a second; what was received before the stop is indexed before returning."""
    receiver = _Receiver()
    server = _listen(address, receiver)  # first: a port in use creates no index
    shown = f"{address[0]}:{server.server_address[1]}"
    started = flushed = time.monotonic()
    with server, _stop_signals(receiver.cut) as stop:
        indices.ensure_source_index(client, index, source, ())
        deadline = None if duration is None else time.monotonic() + duration.total_seconds()
        receiver.deadline = deadline
        if ready is not None:
            ready(shown)
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            server.handle_request()  # returns after one request, _POLL_SECONDS or a signal
            now = time.monotonic()
            if receiver.pending and (now - flushed >= FLUSH_SECONDS or len(receiver.pending) >= FLUSH_VALUES):
                _flush(client, source, index, receiver)
                flushed = now
        if stop.is_set():
            log.info("stopped; indexing what was received")
        _flush(client, source, index, receiver)
    seconds = time.monotonic() - started
    return ListenReport(index, shown, seconds, receiver.posts, receiver.refused, receiver.indexed, receiver.unknown)


@contextmanager
def _stop_signals(cut: Callable[[], None]) -> Iterator[threading.Event]:
    """An event that Ctrl-C (SIGINT) or SIGTERM (a service manager's stop) sets, in the main thread: the loop stops
    between requests, never inside a bulk request, so every value received is indexed and counted once; `cut`
    ends the request being received (a slow sender's post is refused, not waited for)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def stopped(*_: Any) -> None:
        stop.set()
        cut()

    previous = {sig: signal.signal(sig, stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _flush(client: EsClient, source: SourceSettings, index: str, receiver: _Receiver) -> None:
    if receiver.pending:
        batch, receiver.pending = receiver.pending, []
        receiver.indexed += es_bulk.bulk_index(client, index, sample_documents(batch, source), threads=1).indexed


class _Server(HTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed (reset by its sender, say) is one warning line, never a traceback."""
        log.warning("a connection from %s ended: %s", client_address[0], sys.exc_info()[1])


def _listen(address: tuple[str, int], receiver: _Receiver) -> HTTPServer:
    class Handler(BaseHTTPRequestHandler):
        timeout = POST_SECONDS  # of each read; the timer below bounds the whole connection

        def setup(self) -> None:
            super().setup()
            receiver.serving(self.connection)
            self._timer = threading.Timer(receiver.connection_seconds(), receiver.cut)
            self._timer.daemon = True
            self._timer.start()

        def finish(self) -> None:
            self._timer.cancel()
            receiver.serving(None)
            with contextlib.suppress(OSError):  # the sender is gone, or its connection was cut
                super().finish()

        def _answer(self) -> None:
            status, reason = receiver.take(self)
            if status != 200 and receiver.cut_short:  # cut at POST_SECONDS, --duration's end or a stop
                status, reason = 408, f"not received whole within {POST_SECONDS:g} s or before the stop ({reason})"
            if status == 200:
                receiver.posts += 1
            else:
                receiver.refused += 1
                log.warning("refused a post from %s: %s", self.client_address[0], reason)
            body = (reason + "\n").encode("utf-8")
            with contextlib.suppress(OSError):  # the sender is gone, or its connection was cut
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        do_POST = do_GET = do_PUT = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per post would drown the warnings

    try:
        server = _Server(address, Handler)
    except OSError as exc:
        raise ConfigError(f"--listen {address[0]}:{address[1]}: cannot listen: {exc.strerror or exc}") from exc
    server.timeout = _POLL_SECONDS
    return server

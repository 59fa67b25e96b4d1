"""The client's HTTP connection with a deadline for each whole request (connect, send, the complete answer)."""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
from typing import Any

import elasticsearch
from elasticsearch.connection import Urllib3HttpConnection

_flights = threading.local()  # the request this thread is sending, for its connection to attach to


class _Flight:
    """One request on the wire: when its deadline passes, the socket it uses is shut, which ends a read however
    slowly the server dribbles bytes (a socket timeout bounds each read, not the whole answer)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: Any = None
        self.expired = self._done = False

    def attach(self, conn: Any) -> None:
        with self._lock:
            self._conn = conn
            if self.expired and not self._done:
                _shut(conn)

    def expire(self) -> None:
        with self._lock:
            if not self._done:
                self.expired = True
                if self._conn is not None:
                    _shut(self._conn)

    def finish(self) -> None:
        with self._lock:
            self._done, self._conn = True, None


def _shut(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        # the plain socket's shutdown, also under TLS: SSLSocket's own would unset state its reader is using;
        # OSError: already closed
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


@functools.cache
def _tracked(base: type) -> type:
    """`base` (urllib3's HTTP or HTTPS connection class), attaching itself to the thread's request when used."""

    class Tracked(base):  # type: ignore[misc]
        def connect(self) -> None:
            super().connect()
            flight = getattr(_flights, "flight", None)
            if flight is not None:
                flight.attach(self)

        def request(self, *args: Any, **kwargs: Any) -> Any:
            flight = getattr(_flights, "flight", None)
            if flight is not None:
                flight.attach(self)
            return super().request(*args, **kwargs)

    return Tracked


class DeadlineConnection(Urllib3HttpConnection):
    """The client's connection with es.request_timeout as a deadline for each whole request (connect, send, the
    complete answer), not only for each socket read; a request past it fails as a timeout (retried per
    es.max_retries), so an unresponsive or trickling server is waited on for at most (1 + max_retries) x timeout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool.ConnectionCls = _tracked(self.pool.ConnectionCls)

    def perform_request(
        self,
        method: str,
        url: str,
        params: Any = None,
        body: Any = None,
        timeout: Any = None,
        ignore: Any = (),
        headers: Any = None,
    ) -> Any:
        seconds = float(timeout or self.timeout or 0)
        flight = _Flight()
        _flights.flight = flight
        timer = threading.Timer(seconds, flight.expire)
        timer.daemon = True
        timer.start()
        try:
            return super().perform_request(method, url, params, body, timeout, ignore, headers)
        except elasticsearch.ConnectionError as exc:
            if flight.expired and not isinstance(exc, elasticsearch.ConnectionTimeout):
                raise elasticsearch.ConnectionTimeout("TIMEOUT", f"no whole answer in {seconds:g} s", exc) from exc
            raise
        finally:
            flight.finish()
            timer.cancel()
            _flights.flight = None

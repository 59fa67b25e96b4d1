"""Local stand-ins for the outside world, started by tests: an HTTP server recording POSTs, an SMTP server."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Recorded:
    """What a local server received."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)


@contextmanager
def http_server(status: int = 200, reply: bytes = b"ok") -> Iterator[tuple[str, Recorded]]:
    """An HTTP server on 127.0.0.1 that records each POST (path, headers, body) and answers `status` and `reply`."""
    seen = Recorded()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            self.send_response(status)
            self.end_headers()
            self.wfile.write(reply if status < 400 else b"error")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def json_bodies(seen: Recorded) -> list[Any]:
    return [json.loads(r["body"]) for r in seen.requests]


@contextmanager
def smtp_server() -> Iterator[tuple[int, Recorded]]:
    """An SMTP server on 127.0.0.1 (no TLS, no auth) that records each message."""
    seen = Recorded()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            seen.messages.append(message_from_bytes(envelope.content))
            return "250 OK"

    with socket.socket() as probe:  # aiosmtpd's start-up check cannot follow port 0: pick a free port first
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, seen
    finally:
        controller.stop()


@contextmanager
def trickling_server(interval_s: float = 1.0, lifetime_s: float = 120.0) -> Iterator[str]:
    """A server on 127.0.0.1 that answers every connection with one byte of an endless HTTP response every
    `interval_s` seconds (so no socket read ever times out); it stops by itself after `lifetime_s`."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n" + b" " * 100000

    def trickle(conn: socket.socket) -> None:
        with conn:
            for byte in answer:
                if stop.wait(interval_s):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    timer = threading.Timer(lifetime_s, stop.set)
    timer.daemon = True
    timer.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        timer.cancel()
        listener.close()

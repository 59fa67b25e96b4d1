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

"""A blocking call (an HTTP post, an SMTP session) bounded as a whole, not per socket read."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def call_within(seconds: float, call: Callable[[], T]) -> T:
    """`call()`'s result, or its exception; TimeoutError once `seconds` have passed without one.

    The call runs in a daemon thread: a peer that trickles bytes (each read within the socket timeout, the whole
    never) is left behind when the deadline passes, and cannot keep the process alive."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, daemon=True, name="atlas-deadline")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeoutError(f"no whole answer within {seconds:g} s")
    if failure:
        raise failure[0]
    return outcome[0]

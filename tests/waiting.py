"""Waiting on a signal with a deadline: poll a condition, fail after a bounded time saying what
was awaited. Never a bare sleep that an assertion relies on."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    condition: Callable[[], object],
    timeout: float = 60,
    what: str = "",
    tick: Callable[[], object] | None = None,
) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds, saying what for.
    ``tick`` runs between polls (say, what beat would do meanwhile)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        if tick is not None:
            tick()
        time.sleep(0.2)

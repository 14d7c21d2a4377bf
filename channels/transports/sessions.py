"""Connections kept open for one run of sends, and closed when the run ends.

A worker that sends a run of one channel's messages (``sending.pipeline.send_run``) opens a
``run_scope``; inside it, a transport keeps the authenticated session it opened (SMTP after
TLS and AUTH) and sends the next message over it (RSET between messages) instead of opening a
new one. Outside a scope every send opens and closes its own session, as before. A session
is used for at most ``MSC_SEND_SESSION_MESSAGES`` messages and ``MSC_SEND_SESSION_SECONDS``
seconds, then replaced; the scope closes every session when the run ends, whatever happened.

Nothing here decides whether a message may go: the pipeline claims, checks, throttles and
records each message on its own, exactly as without reuse.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from typing import Protocol

from django.conf import settings


class Reusable(Protocol):
    opened: float
    used: int

    def close(self) -> None: ...


_local = threading.local()


@contextmanager
def run_scope() -> Iterator[None]:
    """Keep sessions open until the end of this block (nested scopes share the outer one)."""
    if getattr(_local, "pool", None) is not None:
        yield
        return
    _local.pool = {}
    try:
        yield
    finally:
        pool: dict[Hashable, Reusable] = _local.pool
        _local.pool = None
        for session in pool.values():
            with contextlib.suppress(Exception):  # a goodbye on a connection that may be dead
                session.close()


def active() -> bool:
    return getattr(_local, "pool", None) is not None


def fresh_enough(session: Reusable) -> bool:
    """Whether a session may carry one more message under the caps."""
    return (
        session.used < settings.MSC_SEND_SESSION_MESSAGES
        and time.monotonic() - session.opened < settings.MSC_SEND_SESSION_SECONDS
    )


def take(key: Hashable) -> Reusable | None:
    """The scope's open session for ``key`` if it may carry another message; one past its caps
    is closed and forgotten."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        return None
    session = pool.get(key)
    if session is not None and not fresh_enough(session):
        discard(key)
        return None
    return session


def keep(key: Hashable, session: Reusable) -> bool:
    """Hand a newly opened session to the scope; False (and the caller closes it) if there is
    no scope."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        return False
    previous = pool.get(key)
    if previous is not None and previous is not session:
        with contextlib.suppress(Exception):
            previous.close()
    pool[key] = session
    return True


def discard(key: Hashable) -> None:
    """Close and forget a session (it broke, or the server asked us to go)."""
    pool = getattr(_local, "pool", None)
    session = pool.pop(key, None) if pool is not None else None
    if session is not None:
        with contextlib.suppress(Exception):
            session.close()

"""One overall deadline for a whole outbound conversation.

``MSC_OUTBOUND_TIMEOUT`` bounds each wait for the other side, but a server that drips one byte
just inside every wait never trips it: a greeting sent a byte every two seconds kept a connection
test running for minutes. So every conversation (the SMTP connection test and send, the IMAP
scan, the EWS probe, the Graph call) also runs under one ``Deadline`` of
``MSC_OUTBOUND_DEADLINE`` seconds: before every connect, read and write, the socket's timeout
becomes the smaller of the per-read timeout and the time left, and once no time is left the
conversation ends with ``DeadlineExceeded``.

Reads go through ``reader()``, a buffered file whose every underlying ``recv`` is bounded that
way (``readline`` on a dripping server is many ``recv`` calls, each of which would otherwise get
the whole per-read timeout). ``DeadlineSocket`` wraps a connected socket for libraries that read
through ``sock.makefile()`` and write through ``sock.sendall()`` (http.client, urllib3), and
``session()`` gives requests such sockets.
"""

from __future__ import annotations

import functools
import io
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class DeadlineExceeded(TimeoutError):
    """The conversation ran out of time as a whole (not one slow read)."""


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class Deadline:
    """The time a conversation may take in all, from its creation."""

    def __init__(self, seconds: float | None = None, *, per_read: float | None = None) -> None:
        self.seconds = float(settings.MSC_OUTBOUND_DEADLINE if seconds is None else seconds)
        self.per_read = float(settings.MSC_OUTBOUND_TIMEOUT if per_read is None else per_read)
        self.started = time.monotonic()
        self.ends = self.started + self.seconds

    def restart(self) -> None:
        """A new conversation on the same connection (the next message of a reused session):
        the full time again, for the readers and writers already bound to this deadline."""
        self.started = time.monotonic()
        self.ends = self.started + self.seconds

    def left(self) -> float:
        return self.ends - time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def expired(self) -> bool:
        """True once the time is up. A read whose timeout the deadline had shortened only times
        out at or after ``ends`` (socket timeouts never fire early), so after such a timeout
        this is true, and callers can tell "out of time" from "one read got no answer"."""
        return self.left() <= 0

    def missed(self, who: str = "the server") -> str:
        return f"{who} did not finish the conversation within {_seconds(self.seconds)} s"

    def timeout(self) -> float:
        """The timeout for the next connect, read or write; raises once no time is left."""
        left = self.left()
        if left <= 0:
            raise DeadlineExceeded(self.missed())
        return min(self.per_read, left)

    def reader(self, sock: socket.socket) -> io.BufferedReader:
        """A replacement for ``sock.makefile("rb")`` whose every receive is bounded."""
        return io.BufferedReader(_DeadlineIO(sock, self))


class _DeadlineIO(io.RawIOBase):
    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        # The socket's own raw file keeps the socket open while this file is (as makefile does).
        self._raw = sock.makefile("rb", buffering=0)
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(self._deadline.timeout())
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class DeadlineSocket:
    """A connected socket whose writes and reads (through ``makefile``) keep to a deadline;
    everything else is the socket's own."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        if mode not in ("r", "rb"):
            raise ValueError(f"only reading files are bounded, not {mode!r}")
        return self._deadline.reader(self._sock)

    def sendall(self, data: Any, *args: Any) -> None:
        self._sock.settimeout(self._deadline.timeout())
        self._sock.sendall(data, *args)

    def send(self, data: Any, *args: Any) -> int:
        self._sock.settimeout(self._deadline.timeout())
        return self._sock.send(data, *args)

    def recv(self, size: int, *args: Any) -> bytes:
        self._sock.settimeout(self._deadline.timeout())
        return self._sock.recv(size, *args)

    def recv_into(self, buffer: Any, *args: Any) -> int:
        self._sock.settimeout(self._deadline.timeout())
        return self._sock.recv_into(buffer, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


# --- requests ---------------------------------------------------------------------------------
# requests (urllib3) has per-read timeouts only. Its connections are given the deadline by a
# pool made for one session: after connecting (and the TLS handshake, which the connect
# timeout bounds), the socket is wrapped in a DeadlineSocket.


class _DeadlineHTTPConnection(HTTPConnection):
    deadline: Deadline | None = None

    def connect(self) -> None:
        super().connect()
        if self.deadline is not None:
            self.sock = DeadlineSocket(self.sock, self.deadline)


class _DeadlineHTTPSConnection(HTTPSConnection):
    deadline: Deadline | None = None

    def connect(self) -> None:
        super().connect()
        if self.deadline is not None:
            self.sock = DeadlineSocket(self.sock, self.deadline)


class _DeadlinePoolMixin:
    """A urllib3 pool whose new connections carry the conversation's deadline."""

    def __init__(self, *args: Any, deadline: Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline

    def _new_conn(self) -> Any:
        conn = super()._new_conn()  # type: ignore[misc]
        conn.deadline = self.deadline
        return conn


class _DeadlinePool(_DeadlinePoolMixin, HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(_DeadlinePoolMixin, HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        super().__init__()

    def _pool_classes(self) -> dict[str, Any]:
        return {
            "http": functools.partial(_DeadlinePool, deadline=self.deadline),
            "https": functools.partial(_DeadlineHTTPSPool, deadline=self.deadline),
        }

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes()

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # Through an HTTP(S) proxy too; SOCKS proxies bring their own connection classes.
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = self._pool_classes()
        return manager


@contextmanager
def session(deadline: Deadline) -> Iterator[requests.Session]:
    """A requests session for one conversation: its connections keep to ``deadline``. Pass
    ``timeout=deadline.timeout()`` to each request so that connecting keeps to it too."""
    with requests.Session() as bounded:
        adapter = _DeadlineAdapter(deadline)
        bounded.mount("https://", adapter)
        bounded.mount("http://", adapter)
        yield bounded

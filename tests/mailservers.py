"""Real SMTP servers on loopback for the tests: aiosmtpd with STARTTLS or implicit TLS and AUTH,
a certificate authority made on the fly, and a server that accepts and then stalls."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    messages: list[dict[str, Any]] = field(default_factory=list)
    auth_attempts: list[tuple[str, str]] = field(default_factory=list)


class _Handler:
    """Records each message; ``replies`` scripts the answers to DATA (then 250 when empty),
    ``data_delay`` holds the final answer, ``tokens`` are the XOAUTH2 tokens it accepts."""

    def __init__(
        self,
        received: Received,
        replies: list[str] | None = None,
        data_delay: float = 0.0,
        tokens: set[str] | None = None,
    ) -> None:
        self.received = received
        self.replies = replies if replies is not None else []
        self.data_delay = data_delay
        self.tokens = tokens or set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = self.replies.pop(0) if self.replies else "250 2.0.0 Ok: queued"
        if reply.startswith("250"):
            self.received.messages.append(
                {
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "data": envelope.content,
                    "at": time.time(),
                }
            )
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        return reply

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        try:
            raw = base64.b64decode(args[1]).decode()
        except (IndexError, ValueError):
            return AuthResult(success=False, handled=False)
        fields = dict(part.split("=", 1) for part in raw.split("\x01") if "=" in part)
        token = fields.get("auth", "").removeprefix("Bearer ")
        self.received.auth_attempts.append(("XOAUTH2", fields.get("user", "")))
        return AuthResult(success=token in self.tokens, handled=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpServer:
    host: str
    port: int
    received: Received


class _ImplicitTLSController(Controller):
    def _trigger_server(self) -> None:  # aiosmtpd's own probe would not trust our test CA
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection((self.hostname, self.port), 2.0) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as sock,
        ):
            sock.recv(1024)


@contextmanager
def smtp_server(
    *,
    mode: str = "starttls",  # starttls | implicit | plain
    cert: tuple[Path, Path] | None = None,
    users: dict[str, str] | None = None,
    replies: list[str] | None = None,
    data_delay: float = 0.0,
    tokens: set[str] | None = None,
) -> Iterator[SmtpServer]:
    received = Received()
    handler = _Handler(received, replies, data_delay, tokens)
    accounts = users or {}

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        received.auth_attempts.append((mechanism, login))
        return AuthResult(success=accounts.get(login) == password, handled=False)

    context = None
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    # With implicit TLS the session is encrypted below aiosmtpd, which does not know it: let it
    # offer AUTH there. A "plain" server offers AUTH without TLS, to prove we never use it.
    kwargs: dict[str, Any] = {
        "authenticator": authenticator,
        "auth_require_tls": mode == "starttls",
    }
    port = free_port()
    if mode == "starttls":
        controller: Controller = Controller(
            handler,
            hostname="127.0.0.1",
            port=port,
            tls_context=context,
            require_starttls=True,
            **kwargs,
        )
    elif mode == "implicit":
        controller = _ImplicitTLSController(
            handler, hostname="127.0.0.1", port=port, ssl_context=context, **kwargs
        )
    else:
        controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield SmtpServer(host="localhost", port=port, received=received)
    finally:
        controller.stop()


@contextmanager
def stalling_server() -> Iterator[SmtpServer]:
    """Accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield SmtpServer(host="localhost", port=listener.getsockname()[1], received=Received())
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


@contextmanager
def ews_server(cert: tuple[Path, Path], *, username: str, password: str) -> Iterator[SmtpServer]:
    """A stand-in for an on-premises Exchange EWS endpoint: HTTPS with Basic auth on loopback."""
    import base64
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            received.messages.append({"path": self.path, "data": body})
            ok = self.headers.get("Authorization") == expected
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "text/xml")
            self.end_headers()
            self.wfile.write(b"<ok/>" if ok else b"")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert[0]), str(cert[1]))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield SmtpServer(host="localhost", port=httpd.server_address[1], received=received)
    finally:
        httpd.shutdown()
        httpd.server_close()

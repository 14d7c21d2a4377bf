"""Real SMTP servers on loopback for the tests: aiosmtpd with STARTTLS or implicit TLS and AUTH,
a certificate authority made on the fly, and a server that accepts and then stalls."""

from __future__ import annotations

import asyncio
import base64
import os
import select
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass
class Received:
    messages: list[dict[str, Any]] = field(default_factory=list)
    auth_attempts: list[tuple[str, str]] = field(default_factory=list)
    resets: int = 0  # RSET commands
    # RCPT commands that arrived with the next command already behind them (a pipelined group):
    # never one when the client waits for each reply.
    pipelined: int = 0


class _Handler:
    """Records each message; ``replies`` scripts the answers to DATA (then 250 when empty),
    ``data_delay`` holds the final answer, ``tokens`` are the XOAUTH2 tokens it accepts.
    ``close_after`` (message numbers, from 1) hangs up right after accepting that message;
    ``cut_at`` breaks the connection when that message's content has arrived, before any
    answer (it is not recorded as received)."""

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
        self.seen = 0  # messages whose content arrived, counted from 1
        self.close_after: set[int] = set()
        self.cut_at: set[int] = set()
        self.refused: set[str] = set()  # recipients refused at RCPT TO (550 5.1.1)
        # Offers PIPELINING (RFC 2920), as SendGrid, SparkPost, Gmail and Exchange Online do:
        # aiosmtpd reads each command line from its stream buffer in turn, so commands that
        # arrive together are answered in order (``Received.pipelined`` counts them).
        self.pipelining = True

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if server._reader._buffer:  # aiosmtpd's stream: the next command came in the same write
            self.received.pipelined += 1
        if address in self.refused:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.resets += 1
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.seen += 1
        if self.seen in self.cut_at:  # the connection breaks before the message is accepted
            server.transport.close()
            return "421 4.4.2 gone"
        if self.seen in self.close_after:  # accepted, then the server hangs up
            # Right after its answer is written (closing flushes it first): the client reads
            # the 250 and then finds the connection closed, however fast it sends the next.
            asyncio.get_running_loop().call_soon(server.transport.close)
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


LOOPBACK = "127.0.0.1"  # where every test server listens


@dataclass
class SmtpServer:
    host: str
    port: int
    received: Received
    handler: _Handler | None = None

    @property
    def address(self) -> str:
        """The address and port it listens on, as ``MSC_OUTBOUND_TEST_ALLOW`` names them."""
        return f"{LOOPBACK}:{self.port}"


class _Controller(Controller):
    """Binds the port it is given, or with port 0 a free one the kernel picks, and then knows the
    port it got: no window in which another process takes a port chosen beforehand."""

    def _create_server(self) -> Any:
        return self._bind()

    async def _bind(self) -> Any:
        server = await self.loop.create_server(
            self._factory_invoker, host=self.hostname, port=self.port, ssl=self.ssl_context
        )
        self.port = server.sockets[0].getsockname()[1]
        return server


class _ImplicitTLSController(_Controller):
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
    port: int = 0,  # 0: a free port, bound at once; the server's ``port`` says which
    pipelining: bool = True,
) -> Iterator[SmtpServer]:
    received = Received()
    handler = _Handler(received, replies, data_delay, tokens)
    handler.pipelining = pipelining
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
    if mode == "starttls":
        controller: Controller = _Controller(
            handler,
            hostname=LOOPBACK,
            port=port,
            tls_context=context,
            require_starttls=True,
            **kwargs,
        )
    elif mode == "implicit":
        controller = _ImplicitTLSController(
            handler, hostname=LOOPBACK, port=port, ssl_context=context, **kwargs
        )
    else:
        controller = _Controller(handler, hostname=LOOPBACK, port=port, **kwargs)
    controller.start()
    try:
        yield SmtpServer(host="localhost", port=controller.port, received=received, handler=handler)
    finally:
        controller.stop()


@contextmanager
def stalling_server(port: int = 0) -> Iterator[SmtpServer]:
    """Accepts connections and never says a word."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
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


# A greeting sent a byte at a time (every half second, say): no single read waits long enough to
# time out, and only an overall deadline ends the conversation.
SLOW_GREETING = b"220 " + b"s" * 200 + b" ESMTP\r\n"


@dataclass
class DripServer:
    host: str
    port: int
    connections: int = 0  # accepted so far
    dripped: int = 0  # bytes sent so far, over all connections


@contextmanager
def dripping_server(
    answer: bytes,
    *,
    every: float = 0.5,
    cert: tuple[Path, Path] | None = None,
    after: bytes | None = None,
) -> Iterator[DripServer]:
    """A server too slow to ever trip a per-read timeout: it sends ``answer`` one byte at a
    time, ``every`` seconds apart, on each connection. With ``cert`` it speaks TLS first (IMAPS,
    HTTPS); with ``after`` it first reads until that marker (say the blank line that ends a
    request's headers)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.2)
    server = DripServer(host="localhost", port=listener.getsockname()[1])
    stop = threading.Event()
    context = None
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[0]), str(cert[1]))

    def drip(conn: socket.socket) -> None:
        with suppress(OSError), conn:
            conn.settimeout(5)
            sock: socket.socket = conn
            if context is not None:
                sock = context.wrap_socket(conn, server_side=True)
            if after is not None:
                seen = b""
                while after not in seen:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return
                    seen += chunk
            for byte in answer:
                if stop.wait(every):
                    return
                sock.sendall(bytes([byte]))
                server.dripped += 1

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server.connections += 1
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(2)
        listener.close()


@contextmanager
def connect_proxy() -> Iterator[str]:
    """An HTTP proxy on loopback that tunnels CONNECT requests (TLS passes through it end to
    end), as an egress proxy does; yields its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.2)
    stop = threading.Event()

    def tunnel(client: socket.socket) -> None:
        with suppress(OSError), client:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = client.recv(4096)
                if not chunk:
                    return
                request += chunk
            host, _, port = request.split()[1].decode().rpartition(":")
            with socket.create_connection((host, int(port)), 5) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                ends = [client, upstream]
                while not stop.is_set():
                    ready, _, _ = select.select(ends, [], [], 0.2)
                    for end in ready:
                        data = end.recv(4096)
                        if not data:
                            return
                        (upstream if end is client else client).sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=tunnel, args=(client,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        listener.close()


@dataclass
class ImapServer:
    """A real Dovecot on loopback (implicit TLS), accepting each user's XOAUTH2 token."""

    host: str
    port: int
    root: Path
    ca_file: Path

    def add_user(self, email: str, token: str) -> None:
        # Dovecot's XOAUTH2 checks the bearer token against the passdb as a password.
        with (self.root / "passwd").open("a") as passwd:
            passwd.write(f"{email}:{{PLAIN}}{token}\n")

    @contextmanager
    def login(self, email: str, token: str) -> Iterator[Any]:
        import imaplib

        context = ssl.create_default_context(cafile=str(self.ca_file))
        imap = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=context, timeout=5)
        imap.login(email, token)
        try:
            yield imap
        finally:
            imap.logout()

    def deliver(self, email: str, token: str, *messages: bytes, folder: str = "INBOX") -> None:
        """Put messages in the mailbox the way mail arrives: unread, via APPEND."""
        with self.login(email, token) as imap:
            for raw in messages:
                typ, answer = imap.append(folder, None, None, raw)
                assert typ == "OK", answer

    def renumber(self, email: str, folder: str = "INBOX") -> None:
        """Give the folder a new UIDVALIDITY, as a server does after rebuilding its index."""
        subprocess.run(
            ["doveadm", "-c", str(self.root / "dovecot.conf"), "mailbox", "update", "-u", email,
             "--uid-validity", str(int(time.time()) + 1000), folder],
            check=True, capture_output=True,
        )  # fmt: skip


@contextmanager
def dovecot_server(cert: tuple[Path, Path], ca_file: Path) -> Iterator[ImapServer]:
    """Dovecot from Debian's dovecot-imapd in a temporary folder, on a free loopback port.

    Dovecot will not run its login processes as root: as root it uses the dovecot and dovenull
    users the package creates and keeps mail as ``nobody``; otherwise everything runs as us.
    """
    import pwd
    import shutil
    import tempfile

    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    root = Path(tempfile.mkdtemp(prefix="msc-dovecot-"))
    root.chmod(0o755)
    mail = root / "mail"
    mail.mkdir()
    if os.geteuid() == 0:
        internal, login, mail_user = "dovecot", "dovenull", pwd.getpwnam("nobody")
        os.chown(mail, mail_user.pw_uid, mail_user.pw_gid)
    else:
        me = pwd.getpwuid(os.geteuid())
        internal = login = me.pw_name
        mail_user = me
    (root / "passwd").touch()
    port = free_port()
    config = f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{cert[0]}
ssl_key = <{cert[1]}
ssl_min_protocol = TLSv1.2
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
auth_mechanisms = plain xoauth2
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={mail}/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""
    conf = root / "dovecot.conf"
    conf.write_text(config)
    # In the foreground (-F), so the process is ours to stop even if the test dies.
    master = subprocess.Popen(
        [binary, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or master.poll() is not None:
                    log = root / "dovecot.log"
                    raise RuntimeError(
                        log.read_text() if log.exists() else "dovecot exited"
                    ) from None
                time.sleep(0.05)
        yield ImapServer(host="localhost", port=port, root=root, ca_file=ca_file)
    finally:
        master.terminate()
        try:
            master.wait(10)
        except subprocess.TimeoutExpired:
            master.kill()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class CuttingProxy:
    host: str
    port: int
    cut_after: int | None = None  # bytes from the server; then both sides are dropped
    cuts: int = 0


@contextmanager
def cutting_proxy(target_host: str, target_port: int) -> Iterator[CuttingProxy]:
    """A TCP proxy on loopback (TLS passes through it end to end). While ``cut_after`` is set,
    a connection is dropped once the server has sent that many bytes through it: a network
    failure in the middle of whatever was being read."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.2)
    proxy = CuttingProxy(host="127.0.0.1", port=listener.getsockname()[1])
    stop = threading.Event()

    def pipe(src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        sent = 0
        limit = proxy.cut_after if downstream else None
        try:
            while data := src.recv(4096):
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[: limit - sent])
                    proxy.cuts += 1
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for sock in (src, dst):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection((target_host, target_port))
            for args in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=pipe, args=args, daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        stop.set()
        listener.close()
        thread.join(2)

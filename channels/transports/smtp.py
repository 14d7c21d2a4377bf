"""SMTP to user-entered relays: guarded, TLS-verified, AUTH only ever over TLS.

``open_connection`` is the single way this product opens an SMTP session to a customer's relay;
the connection test and (later) the sending pipeline both use it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from channels.guard import SMTP_PORTS, Destination, OutboundRefused, check_destination
from channels.kinds.config import Security, SmtpConfig
from channels.transports import (
    AUTH,
    RETRY,
    UNCERTAIN,
    Handover,
    SendFailure,
    classify,
    failure_from_reply,
    reply_text,
    sessions,
)
from channels.transports.deadline import Deadline
from msc_admin.stored import sentence

# Sentences (``msc_admin.stored``): a connection test's result and a send's reason are stored
# as such, and read in the reader's language.
AUTH_UNSUCCESSFUL = gettext_noop("Authentication unsuccessful (%(reply)s)")
UNTRUSTED = gettext_noop("certificate not trusted: %(why)s")
NO_ANSWER = gettext_noop("no answer after %(seconds)s s")


def is_auth_failure(text: str) -> bool:
    """Whether a problem (a sentence, or a provider's words) says the server refused the
    credentials, in whatever language it reads in."""
    return getattr(text, "msgid", "") == AUTH_UNSUCCESSFUL or str(text).startswith(
        "Authentication unsuccessful"
    )


class SmtpProblem(Exception):
    """What went wrong, in words a user can act on. Never contains the password.

    ``code`` is the server's reply code when the server answered (421, 535, …), else ``None``.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class XOAuth2:
    """SASL XOAUTH2 (Gmail, Office 365): the mailbox address and a fresh access token."""

    user: str
    token: str

    def initial_response(self, challenge: bytes | None = None) -> str:
        # After a failure the server sends a JSON challenge; the client must answer empty.
        if challenge is not None:
            return ""
        return f"user={self.user}\x01auth=Bearer {self.token}\x01\x01"


@dataclass
class ConnectionReport:
    ok: bool
    summary: str
    steps: list[str] = field(default_factory=list)


def tls_context() -> ssl.SSLContext:
    """The client TLS context: system CAs plus ``MSC_EXTRA_CA_FILE``. Loading the system store
    takes tens of milliseconds, so one context is built per CA file (and its modification time)
    and shared; contexts are safe to share between connections and threads."""
    extra = settings.MSC_EXTRA_CA_FILE or ""
    stamp = os.stat(extra).st_mtime_ns if extra and os.path.exists(extra) else 0
    return _tls_context(extra, stamp)


@functools.lru_cache(maxsize=8)
def _tls_context(extra: str, stamp: int) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if extra:
        context.load_verify_locations(cafile=extra)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class _PinnedMixin:
    """Connect to the address the guard checked, while TLS verifies the name that was entered;
    every connect, write and read keeps to the conversation's deadline."""

    destination: Destination
    deadline: Deadline
    sock: socket.socket | None
    file: Any

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # The connect timeout also bounds the implicit-TLS handshake (it stays on the socket).
        sock = self.destination.connect(self.deadline.timeout())
        context = getattr(self, "context", None)
        if isinstance(self, smtplib.SMTP_SSL) and context is not None:
            return context.wrap_socket(sock, server_hostname=host)
        return sock

    def send(self, s: Any) -> None:
        if self.sock is not None:
            self.sock.settimeout(self.deadline.timeout())
        super().send(s)  # type: ignore[misc]

    def getreply(self) -> tuple[int, bytes]:
        # smtplib reads replies through sock.makefile(); after STARTTLS it drops that file and
        # reads the TLS socket, so a fresh bounded reader is made whenever there is none.
        if self.file is None and self.sock is not None:
            self.file = self.deadline.reader(self.sock)
        return super().getreply()  # type: ignore[misc]

    def pipelined(self, *commands: str) -> tuple[list[tuple[int, bytes]], OSError | None]:
        """RFC 2920: the commands written in one go, then their replies read in order. Returns
        the replies read, and what stopped the reading early (the connection closed, a reply
        overdue), if anything: the replies before it still count."""
        self.send("".join(f"{command}\r\n" for command in commands))
        replies: list[tuple[int, bytes]] = []
        try:
            for _ in commands:
                replies.append(self.getreply())
        except OSError as error:  # smtplib.SMTPException is an OSError too
            return replies, error
        return replies, None


class PinnedSMTP(_PinnedMixin, smtplib.SMTP):
    pass


class PinnedSMTPSSL(_PinnedMixin, smtplib.SMTP_SSL):
    pass


def _describe_reply(error: smtplib.SMTPResponseException) -> str:
    text = (
        error.smtp_error.decode("utf-8", "replace")
        if isinstance(error.smtp_error, bytes)
        else str(error.smtp_error)
    )
    text = " ".join(text.split())[:200]
    return f"{error.smtp_code} {text}".strip()


def _auth(client: smtplib.SMTP, method: str, authobject: Any) -> None:
    if not client.has_extn("auth"):
        raise SmtpProblem(
            sentence(gettext_noop("The server does not offer authentication (no AUTH after TLS)."))
        )
    offered = client.esmtp_features.get("auth", "").upper().split()
    if method not in offered:
        listed = ", ".join(offered) or "none"
        said = gettext_noop("The server does not offer AUTH %(method)s; it offers %(listed)s.")
        raise SmtpProblem(sentence(said, method=method, listed=listed))
    try:
        client.auth(method, authobject)
    except smtplib.SMTPAuthenticationError as error:
        said = sentence(AUTH_UNSUCCESSFUL, reply=_describe_reply(error))
        raise SmtpProblem(said, error.smtp_code) from None


@contextmanager
def open_connection(
    config: SmtpConfig,
    password: str,
    steps: list[str] | None = None,
    *,
    oauth: XOAuth2 | None = None,
    deadline: Deadline | None = None,
) -> Iterator[smtplib.SMTP]:
    """An authenticated SMTP session, or ``SmtpProblem`` saying precisely what failed.

    The whole conversation, including what the caller does with the session, keeps to
    ``deadline`` (a new ``MSC_OUTBOUND_DEADLINE`` one if not given).
    """
    log = steps if steps is not None else []
    timeout = settings.MSC_OUTBOUND_TIMEOUT
    deadline = deadline or Deadline()
    try:
        dest: Destination = check_destination(
            config.host, int(config.port), allowed_ports=SMTP_PORTS
        )
    except OutboundRefused as refused:
        raise SmtpProblem(refused.args[0]) from None  # a sentence, stored as one
    # The steps are shown to the person who asked, once, and never stored: in their language.
    log.append(
        _("%(host)s resolves to %(addresses)s; connecting to port %(port)s.")
        % {"host": dest.host, "addresses": ", ".join(dest.addresses), "port": dest.port}
    )
    context = tls_context()
    implicit = config.security == Security.SSL_TLS
    cls = PinnedSMTPSSL if implicit else PinnedSMTP
    kwargs = {"context": context} if implicit else {}
    client = cls(timeout=timeout, **kwargs)  # type: ignore[arg-type]
    client.destination = dest
    client.deadline = deadline
    # smtplib uses _host for STARTTLS SNI and certificate checks.
    setattr(client, "_host", dest.host)  # noqa: B010
    started = time.monotonic()
    try:
        try:
            code, banner = client.connect(dest.host, dest.port)
        except ssl.SSLCertVerificationError as error:
            raise SmtpProblem(sentence(UNTRUSTED, why=error.verify_message)) from None
        if code != 220:
            said = gettext_noop("The server refused the connection: %(code)s %(banner)s")
            raise SmtpProblem(sentence(said, code=code, banner=repr(banner)), code)
        seconds = number_format(time.monotonic() - started, 2)
        log.append(
            _("Connected in %(seconds)s s over TLS.") % {"seconds": seconds}
            if implicit
            else _("Connected in %(seconds)s s.") % {"seconds": seconds}
        )
        client.ehlo()
        if not implicit:
            if not client.has_extn("starttls"):
                raise SmtpProblem(
                    sentence(
                        gettext_noop(
                            "The server does not offer STARTTLS, so the password was not sent. "
                            "Use a server or port that supports TLS."
                        )
                    )
                )
            try:
                client.starttls(context=context)
            except ssl.SSLCertVerificationError as error:
                raise SmtpProblem(sentence(UNTRUSTED, why=error.verify_message)) from None
            client.ehlo()
            log.append(_("STARTTLS succeeded."))
        tls = client.sock.version() if isinstance(client.sock, ssl.SSLSocket) else None
        if tls is None:  # defensive: never AUTH in the clear
            raise SmtpProblem(
                sentence(gettext_noop("TLS was not established, so the password was not sent."))
            )
        log.append(
            _("%(tls)s established; the certificate is valid for %(host)s.")
            % {"tls": tls, "host": dest.host}
        )
        if oauth is not None:
            _auth(client, "XOAUTH2", oauth.initial_response)
            log.append(_("AUTH XOAUTH2 accepted for %(user)s.") % {"user": oauth.user})
        elif config.username:
            method = config.auth_method.upper()
            client.user, client.password = config.username, password
            _auth(client, method, getattr(client, "auth_" + method.lower().replace("-", "_")))
            log.append(
                _("AUTH %(method)s accepted for %(user)s.")
                % {"method": method, "user": config.username}
            )
        yield client
    except SmtpProblem:
        raise
    except OSError as error:
        # smtplib.SMTPException is an OSError too. Out of time overall, whatever the read or
        # write that noticed it (smtplib reports some as "Connection unexpectedly closed").
        if deadline.expired:
            raise SmtpProblem(deadline.missed()) from None
        raise _problem(error, dest, timeout) from None
    finally:
        try:
            client.quit()
        except Exception:
            # Best-effort goodbye on a connection that may already be dead.
            with contextlib.suppress(Exception):
                client.close()


def _problem(error: OSError, dest: Destination, timeout: float) -> SmtpProblem:
    """What went wrong with the connection or the server, for a person to act on."""
    match error:
        case TimeoutError():
            return SmtpProblem(sentence(NO_ANSWER, seconds=timeout))
        case ConnectionRefusedError():
            said = gettext_noop("Connection refused by %(host)s port %(port)s.")
            return SmtpProblem(sentence(said, host=dest.host, port=dest.port))
        case smtplib.SMTPServerDisconnected():
            # smtplib turns a read timeout into "Connection unexpectedly closed: timed out".
            if "timed out" in str(error):
                return SmtpProblem(sentence(NO_ANSWER, seconds=timeout))
            return SmtpProblem(
                sentence(gettext_noop("The server closed the connection unexpectedly."))
            )
        case smtplib.SMTPResponseException():
            said = sentence(
                gettext_noop("The server answered %(reply)s"), reply=_describe_reply(error)
            )
            return SmtpProblem(said, error.smtp_code)
        case ssl.SSLError():
            said = sentence(gettext_noop("TLS failed: %(why)s"), why=str(error.reason or error))
            return SmtpProblem(said)
        case _:
            said = sentence(
                gettext_noop("Could not connect: %(why)s"), why=str(error.strerror or error)
            )
            return SmtpProblem(said)


def check_connection(config: SmtpConfig, password: str) -> ConnectionReport:
    """Handshake, TLS and AUTH, without sending mail."""
    steps: list[str] = []
    try:
        with open_connection(config, password, steps):
            pass
    except SmtpProblem as problem:
        return ConnectionReport(ok=False, summary=problem.args[0], steps=steps)
    return ConnectionReport(
        ok=True,
        summary=sentence(gettext_noop("Connection, TLS and authentication succeeded.")),
        steps=steps,
    )


def _dot_stuff(data: bytes) -> bytes:
    data = re.sub(rb"(?:\r\n|\n|\r(?!\n))", b"\r\n", data)
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _send_failure(problem: SmtpProblem) -> SendFailure:
    if problem.code is not None:
        said = str(problem)
        return SendFailure(classify(problem.code, said), said, problem.code)
    kind = AUTH if is_auth_failure(problem.args[0]) else RETRY
    return SendFailure(kind, problem.args[0])  # a sentence stays one (``msc_admin.stored``)


class _Stale(Exception):
    """A reused session turned out closed (or the server said 421) before the hand-over:
    nothing of this message went, so it is sent again over a new session."""


def _transact(
    client: smtplib.SMTP,
    deadline: Deadline,
    *,
    sender: str,
    recipient: str,
    data: bytes,
    on_handover: Handover,
    reused: bool,
    session: _Session | None = None,
) -> str:
    """One message over an open session: its final reply, or ``SendFailure``.

    A reused session is RSET first only when its last transaction did not end (refused at MAIL
    or RCPT, or no 354): one that ended with the reply to its content is reset by the server
    already (RFC 5321 4.1.1.4), and MAIL itself then finds a session the server has closed.
    """
    reset = reused and (session is None or not session.clean)
    if session is not None:
        session.clean = False
    try:
        if client.has_extn("pipelining"):
            _envelope_pipelined(client, sender, recipient, reset=reset, reused=reused)
        else:
            _envelope(client, sender, recipient, reset=reset, reused=reused)
    except (OSError, smtplib.SMTPException) as error:
        if reused:
            raise _Stale() from None
        if deadline.expired:
            raise _send_failure(SmtpProblem(deadline.missed())) from None
        timeout = settings.MSC_OUTBOUND_TIMEOUT
        raise _send_failure(_problem(error, client.destination, timeout)) from None  # type: ignore[attr-defined]
    on_handover()
    try:
        client.send(_dot_stuff(data))
        code, text = client.getreply()
        if session is not None:
            session.clean = True
    except (OSError, smtplib.SMTPException) as error:
        broke = (
            deadline.missed()
            if deadline.expired
            else f"the connection broke ({error.__class__.__name__})"
        )
        raise SendFailure(
            UNCERTAIN,
            f"After the message was handed to the server, {broke}; it may have been delivered.",
        ) from None
    if code != 250:
        raise failure_from_reply(code, text)
    return reply_text(code, text)


def _envelope(
    client: smtplib.SMTP, sender: str, recipient: str, *, reset: bool, reused: bool
) -> None:
    """RSET (when ``reset``), MAIL, RCPT and DATA, each waiting for its reply, up to the 354."""
    if reset:
        code, text = client.rset()
        if code != 250:
            raise _Stale()
    code, text = client.mail(sender)
    if code == 421 and reused:
        raise _Stale()
    if code != 250:
        raise failure_from_reply(code, text)
    code, text = client.rcpt(recipient)
    if code not in (250, 251):
        raise failure_from_reply(code, text)
    client.putcmd("data")
    code, text = client.getreply()
    if code != 354:
        raise failure_from_reply(code, text)


def _envelope_pipelined(
    client: smtplib.SMTP, sender: str, recipient: str, *, reset: bool, reused: bool
) -> None:
    """The same over a server that offers PIPELINING (RFC 2920): RSET, MAIL, RCPT and DATA
    written together (DATA last in the group, as the RFC requires), then every reply checked
    in order, each read before anything else is written. One round trip instead of three or
    four; the content still goes only after the 354.

    A refused MAIL or RCPT fails the message whatever DATA was answered: DATA is then refused
    (503/554) by a conforming server, and if one said 354 all the same, a lone dot ends that
    empty transaction (RFC 2920 3.1), nothing of the message having gone. The transaction is
    left open either way: the next message's group starts with RSET."""
    commands = [
        f"mail FROM:{smtplib.quoteaddr(sender)}",
        f"rcpt TO:{smtplib.quoteaddr(recipient)}",
        "data",
    ]
    replies, broken = client.pipelined(*(["rset", *commands] if reset else commands))  # type: ignore[attr-defined]
    if reset:
        if replies and replies[0][0] != 250:
            raise _Stale()
        replies = replies[1:]
    checks = [(250,), (250, 251), (354,)]
    for index, (code, text) in enumerate(replies):
        if index == 0 and code == 421 and reused:
            raise _Stale()
        if code not in checks[index]:
            if index < 2 and len(replies) == 3 and replies[2][0] == 354:
                with contextlib.suppress(OSError):  # a dead session is found stale next time
                    client.send(".\r\n")
                    client.getreply()
            raise failure_from_reply(code, text)
    if broken is not None:
        raise broken


class _Session:
    """An authenticated session kept open for the next messages of a run (``sessions``)."""

    def __init__(self, config: SmtpConfig, password: str, oauth: XOAuth2 | None) -> None:
        self.deadline = Deadline()
        self._stack = contextlib.ExitStack()
        self.client = self._stack.enter_context(
            open_connection(config, password, oauth=oauth, deadline=self.deadline)
        )
        self.opened = time.monotonic()
        self.used = 0
        self.clean = True  # its last transaction ended with the reply to its content

    def close(self) -> None:
        self._stack.close()


def send_mime(
    config: SmtpConfig,
    password: str,
    *,
    sender: str,
    recipient: str,
    data: bytes,
    on_handover: Handover,
    oauth: XOAuth2 | None = None,
    reuse: Hashable | None = None,
) -> str:
    """Send one message; returns the server's final reply or raises ``SendFailure``.

    ``on_handover`` runs after the server has said 354 and before the first byte of the
    content: from then on, a broken connection means "maybe delivered" (``uncertain``).

    Inside a ``sessions.run_scope`` and with a ``reuse`` key (the channel), the session stays
    open for the run's next message, which goes without a new TCP, TLS and AUTH (after an RSET
    when the last transaction was cut short).
    A reused session found closed, or answering 421, before the hand-over is replaced by a new
    one for the same message; any failure without a server reply (or a 421) closes it.
    """
    message = {"sender": sender, "recipient": recipient, "data": data, "on_handover": on_handover}
    if reuse is None or not sessions.active():
        deadline = Deadline()
        try:
            with open_connection(config, password, oauth=oauth, deadline=deadline) as client:
                return _transact(client, deadline, reused=False, **message)  # type: ignore[arg-type]
        except SmtpProblem as problem:
            raise _send_failure(problem) from None
    key = (
        "smtp",
        reuse,
        config.host,
        int(config.port),
        config.username,
        oauth.user if oauth else "",
    )
    found = sessions.take(key)
    session = found if isinstance(found, _Session) else None
    reused = session is not None
    if session is None:
        try:
            session = _Session(config, password, oauth)
        except SmtpProblem as problem:
            raise _send_failure(problem) from None
        sessions.keep(key, session)
    else:
        session.deadline.restart()
    try:
        reply = _transact(
            session.client,
            session.deadline,
            reused=reused,
            session=session,
            **message,  # type: ignore[arg-type]
        )
    except _Stale:
        sessions.discard(key)
        return send_mime(config, password, oauth=oauth, reuse=reuse, **message)  # type: ignore[arg-type]
    except SendFailure as failure:
        if failure.code is None or failure.code == 421:
            sessions.discard(key)
        raise
    session.used += 1
    return reply

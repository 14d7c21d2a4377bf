"""Exchange on-premises (2013/2016/2019) through EWS with exchangelib.

Autodiscover from the mailbox address, or the EWS URL entered; NTLM or Basic, whichever the
server offers (NTLM first); our own MIME sent with ``CreateItem`` (``SendAndSaveCopy``: the
message lands in Sent Items and keeps our Message-ID); the Inbox and Junk Email read through
``FindItem``/``GetItem`` (``bounces.ews``).

Every HTTP request exchangelib makes goes through ``GuardedAdapter`` (installed as
``BaseProtocol.HTTP_ADAPTER_CLS``) and only inside a ``conversation``: HTTPS only, the host
resolved once per conversation by ``check_destination`` (public addresses, port 443, in
production), the connection made to the checked address while TLS verifies the certificate for
the name entered (system CAs plus ``MSC_EXTRA_CA_FILE``), environment proxies ignored, and every
connect, read and write kept to the conversation's ``Deadline``. Outside a conversation the
adapter refuses to send anything. exchangelib runs with ``FailFast``: no retry loops of its own
inside a worker; the pipeline and the scan schedule decide what is tried again.

Autodiscover is exchangelib's SOAP Autodiscover (``GetUserSettings``), asked at the two HTTPS
addresses the protocol starts with (``https://<domain>/autodiscover/autodiscover.svc``, then
``https://autodiscover.<domain>/…``). Its other steps are left out on purpose: the plain-HTTP
redirect would take the credentials' next hop from an unencrypted answer, and the SRV look-up
would pick a host and port outside the guard. Without an answer there, the admin enters the EWS
URL. Nothing is cached between conversations (exchangelib's protocol and session pools are
closed at the end of each one).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils.translation import gettext as _
from exchangelib import DELEGATE, UTC, Account, Configuration, Credentials, Q, Version
from exchangelib import errors as ews_errors
from exchangelib.autodiscover.protocol import AutodiscoverProtocol
from exchangelib.folders import FolderCollection, Inbox, JunkEmail, Root, SentItems
from exchangelib.items import SEND_AND_SAVE_COPY, SEND_TO_NONE, Message
from exchangelib.properties import DistinguishedFolderId, Mailbox
from exchangelib.protocol import BaseProtocol, FailFast, Protocol
from exchangelib.services import CreateItem
from exchangelib.transport import BASIC, NTLM, get_auth_method_from_response
from exchangelib.version import EXCHANGE_2013
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool

from channels.guard import HTTPS_PORTS, Destination, OutboundRefused, check_destination
from channels.kinds.config import ExchangeOnPremConfig
from channels.transports import (
    AUTH,
    BACKOFF,
    PERMANENT,
    QUOTA,
    RETRY,
    UNCERTAIN,
    Handover,
    SendFailure,
    names_quota,
)
from channels.transports.deadline import Deadline, DeadlineSocket
from channels.transports.smtp import ConnectionReport, tls_context

AUTODISCOVER_PATH = "/autodiscover/autodiscover.svc"
# The EWS schema every supported server (2013 and later) speaks; asking for it saves a round of
# version guessing.
EWS_VERSION = Version(build=EXCHANGE_2013)
AUTH_LABELS = {NTLM: "NTLM", BASIC: "Basic"}

# Which kind of trouble a conversation met: the words say what to do, the kind what follows.
NOT_FOUND = "autodiscover"
REFUSED = "auth"
UNTRUSTED = "certificate"
DISABLED = "disabled"
UNREACHABLE = "unreachable"
BUSY = "busy"
OTHER = "other"


class EwsProblem(Exception):
    """Why an EWS conversation failed, in a sentence the admin can act on."""

    def __init__(self, kind: str, text: str, *, status: int | None = None) -> None:
        super().__init__(text)
        self.kind = kind
        self.text = text
        self.status = status


# --- the guard, for every request exchangelib makes ------------------------------------------


@dataclass
class _Call:
    """One conversation: its deadline, and every host resolved (once) during it."""

    deadline: Deadline
    checked: dict[tuple[str, int], Destination] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def destination(self, host: str, port: int) -> Destination:
        with self.lock:
            key = (host.lower(), port)
            if key not in self.checked:
                self.checked[key] = check_destination(host, port, allowed_ports=HTTPS_PORTS)
            return self.checked[key]


_current: ContextVar[_Call | None] = ContextVar("ews_call", default=None)


class _PinnedConnection(HTTPSConnection):
    destination: Destination
    deadline: Deadline

    def _new_conn(self) -> Any:
        # To the address the guard checked, never a fresh look-up of the name.
        return self.destination.connect(self.deadline.timeout())

    def connect(self) -> None:
        super().connect()  # TLS, verified for ``self.host``: the name entered
        self.sock = DeadlineSocket(self.sock, self.deadline)


class _PinnedPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedConnection

    def __init__(self, destination: Destination, deadline: Deadline) -> None:
        super().__init__(
            destination.host,
            destination.port,
            maxsize=1,
            cert_reqs="CERT_REQUIRED",
            ssl_context=tls_context(),
        )
        self.destination = destination
        self.deadline = deadline

    def _new_conn(self) -> Any:
        conn: Any = super()._new_conn()
        conn.destination = self.destination
        conn.deadline = self.deadline
        return conn


class GuardedAdapter(HTTPAdapter):
    """exchangelib's HTTP adapter: every request through the outbound guard (module docstring).
    NTLM authenticates a connection, so the pool for a destination is kept for the adapter's
    (one session's) life; the conversation ends both."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pools: dict[Destination, _PinnedPool] = {}

    def _call(self) -> _Call:
        call = _current.get()
        if call is None:
            raise OutboundRefused("EWS requests are only made inside a guarded conversation.")
        return call

    def get_connection_with_tls_context(
        self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
    ) -> Any:
        call = self._call()
        url = urlsplit(request.url or "")
        if url.scheme != "https" or not url.hostname:
            raise OutboundRefused("Exchange is only contacted over https://.")
        destination = call.destination(url.hostname, url.port or 443)
        pool = self._pools.get(destination)
        if pool is None or pool.deadline is not call.deadline:
            if pool is not None:
                pool.close()
            pool = self._pools[destination] = _PinnedPool(destination, call.deadline)
        return pool

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        """The pinned pool verifies with our own context; nothing here may loosen it."""

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        """Within the conversation's deadline, verified, never through a proxy."""
        call = self._call()
        response = super().send(
            request, stream=stream, timeout=call.deadline.timeout(), verify=True, proxies={}
        )
        call.statuses.append(response.status_code)
        return response

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        super().close()


BaseProtocol.HTTP_ADAPTER_CLS = GuardedAdapter  # every exchangelib session, Autodiscover's too
BaseProtocol.TIMEOUT = 0  # never used: the adapter sets each request's timeout from the deadline


# --- one conversation ----------------------------------------------------------------------------


@dataclass
class Ews:
    account: Account
    endpoint: str
    auth: str
    steps: list[str]
    call: _Call

    def folder(self, cls: type[Inbox] | type[JunkEmail] | type[SentItems]) -> Any:
        """A well-known folder by its distinguished id, without asking the server for it."""
        root = Root(account=self.account)
        mailbox = Mailbox(email_address=self.account.primary_smtp_address)
        distinguished = DistinguishedFolderId(id=cls.DISTINGUISHED_FOLDER_ID, mailbox=mailbox)
        return cls(root=root, _distinguished_id=distinguished)

    def folders(self, *classes: type[Inbox] | type[JunkEmail]) -> FolderCollection:
        return FolderCollection(account=self.account, folders=[self.folder(c) for c in classes])


def autodiscover_urls(email: str) -> list[str]:
    domain = email.rpartition("@")[2].lower()
    port = settings.MSC_EXCHANGE_AUTODISCOVER_PORT
    suffix = f":{port}{AUTODISCOVER_PATH}" if port != 443 else AUTODISCOVER_PATH
    return [f"https://{domain}{suffix}", f"https://autodiscover.{domain}{suffix}"]


@contextmanager
def conversation(
    config: ExchangeOnPremConfig, password: str, deadline: Deadline | None = None
) -> Iterator[Ews]:
    """Find EWS, agree on NTLM or Basic and yield the mailbox's account; every failure on the
    way is an ``EwsProblem``. Errors of calls made inside are the caller's (``explain``)."""
    call = _Call(deadline or Deadline())
    token = _current.set(call)
    credentials = Credentials(config.username, password)
    protocols: list[BaseProtocol] = []
    try:
        steps: list[str] = []
        try:
            endpoint = config.server_url or _autodiscover(config, credentials, steps, protocols)
            auth = _auth_type(endpoint, call)
        except EXPECTED as error:
            raise explain(error, call) from None
        # Steps are shown once to the person who asked and never stored: in their language.
        steps.append(
            _("EWS at %(endpoint)s; the server offers %(auth)s sign-in.")
            % {"endpoint": endpoint, "auth": AUTH_LABELS[auth]}
        )
        ews_config = Configuration(
            service_endpoint=endpoint,
            credentials=credentials,
            auth_type=auth,
            version=EWS_VERSION,
            retry_policy=FailFast(),
        )
        account = Account(
            config.email,
            config=ews_config,
            autodiscover=False,
            access_type=DELEGATE,
            default_timezone=UTC,
        )
        protocols.append(account.protocol)
        yield Ews(account, endpoint, auth, steps, call)
    finally:
        for protocol in protocols:
            with contextlib.suppress(Exception):
                protocol.close()
            if isinstance(protocol, Protocol):
                with contextlib.suppress(KeyError):
                    del Protocol[protocol.config]  # exchangelib's process-wide cache
        _current.reset(token)


def _autodiscover(
    config: ExchangeOnPremConfig,
    credentials: Credentials,
    steps: list[str],
    protocols: list[BaseProtocol],
) -> str:
    domain = config.email.rpartition("@")[2]
    tried: list[str] = []
    answered_somewhere = False  # an answer (or a refusal by the guard), not only silence
    for url in autodiscover_urls(config.email):
        protocol = AutodiscoverProtocol(
            config=Configuration(
                service_endpoint=url, credentials=credentials, retry_policy=FailFast()
            )
        )
        protocols.append(protocol)
        call = _current.get()
        assert call is not None
        before = len(call.statuses)
        try:
            answer = protocol.get_user_settings(user=config.email)
            answer.raise_errors()
        except ews_errors.UnauthorizedError as error:
            raise explain(error, call) from None
        except OutboundRefused as refused:
            answered_somewhere = True
            tried.append(f"{url} ({refused})")
            continue
        except EXPECTED as error:
            if _untrusted(error) or call.deadline.expired:
                raise explain(error, call) from None
            answered_somewhere |= len(call.statuses) > before
            tried.append(f"{url} ({_why_not(call, before, error)})")
            continue
        if answer.ews_url:
            steps.append(
                _("Autodiscover at %(url)s answered: EWS is at %(ews)s.")
                % {"url": url, "ews": answer.ews_url}
            )
            return str(answer.ews_url)
        answered_somewhere = True
        tried.append(f"{url} (no EWS address in the answer)")
    raise EwsProblem(
        # Nothing answered at all may be a passing network fault: tried again, not a setting.
        NOT_FOUND if answered_somewhere else UNREACHABLE,
        f"Autodiscover found no Exchange server for {domain}: tried {'; '.join(tried)}. "
        "Untick Autodiscover and enter the EWS URL (ask your IT team for it; it usually ends "
        "in /EWS/Exchange.asmx).",
    )


def _why_not(call: _Call, before: int, error: Exception) -> str:
    answered = call.statuses[before:]
    if answered:
        return f"HTTP {answered[-1]}"
    if call.deadline.expired:
        return "no answer in time"
    return "not reachable"


def _auth_type(endpoint: str, call: _Call) -> str:
    """NTLM or Basic, as the server's unauthenticated answer offers them (NTLM first)."""
    url = urlsplit(endpoint)
    if url.scheme != "https" or not url.hostname:
        raise EwsProblem(OTHER, "The EWS URL must start with https://.")
    before = len(call.statuses)
    with requests.Session() as session:
        session.trust_env = False
        session.mount("https://", GuardedAdapter(max_retries=0))
        session.mount("http://", GuardedAdapter(max_retries=0))
        response = session.post(
            endpoint,
            data=_PROBE,
            headers={"Content-Type": "text/xml; charset=utf-8"},
            allow_redirects=False,
        )
        response.close()
    del call.statuses[before:]  # the probe's 401 says nothing about what follows
    status = response.status_code
    if status == 401:
        try:
            offered = get_auth_method_from_response(response=response)
        except ews_errors.UnauthorizedError:
            offered = ""
        if offered in (NTLM, BASIC):
            return offered
        raise EwsProblem(
            REFUSED,
            f"Exchange at {url.hostname} offers no sign-in we can use (NTLM or Basic). Ask "
            "your IT team to enable NTLM or Basic authentication on the EWS virtual directory.",
            status=status,
        )
    raise _status_problem(status, endpoint)


def _status_problem(status: int, endpoint: str) -> EwsProblem:
    host = urlsplit(endpoint).hostname or "your server"
    if status == 403:
        return EwsProblem(
            DISABLED,
            f"Exchange at {host} refused EWS access (HTTP 403): EWS is disabled for this "
            "mailbox or this server. Ask your IT team to allow EWS for it "
            "(Set-CASMailbox -EWSEnabled $true).",
            status=status,
        )
    if status == 404:
        return EwsProblem(
            DISABLED,
            f"There is no EWS at {endpoint or host} (HTTP 404). Check the EWS URL: it usually ends "
            "in /EWS/Exchange.asmx.",
            status=status,
        )
    if status in (502, 503, 504):
        return EwsProblem(
            BUSY,
            f"Exchange at {host} is not available (HTTP {status}); will try again.",
            status=status,
        )
    if status in (301, 302, 307, 308):
        return EwsProblem(
            OTHER,
            f"{endpoint or host} redirects elsewhere (HTTP {status}); enter the EWS URL it "
            "leads to.",
            status=status,
        )
    return EwsProblem(OTHER, f"Exchange at {host} answered HTTP {status}.", status=status)


_PROBE = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"'
    b' xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"'
    b' xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">'
    b'<s:Header><t:RequestServerVersion Version="Exchange2013"/></s:Header>'
    b'<s:Body><m:ResolveNames ReturnFullContactData="false"><m:UnresolvedEntry>DUMMY'
    b"</m:UnresolvedEntry></m:ResolveNames></s:Body></s:Envelope>"
)


def _untrusted(error: BaseException) -> bool:
    text = str(error)
    return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text


# What exchangelib raises for trouble on the way (anything else is a bug, and propagates).
EXPECTED = (ews_errors.EWSError, requests.RequestException, OSError, OutboundRefused)
# Raised as response-message errors, but about the connection, not an answer to the request.
_TRANSPORT_LIKE = (
    ews_errors.ErrorTimeoutExpired,
    ews_errors.ErrorInternalServerTransientError,
    ews_errors.ErrorServerBusy,
)


def answered(error: BaseException) -> bool:
    """Whether Exchange answered the request itself (a SOAP response message)."""
    return isinstance(error, ews_errors.ResponseMessageError) and not isinstance(
        error, _TRANSPORT_LIKE
    )


def explain(error: BaseException, call: _Call | None = None) -> EwsProblem:
    """What an exception met in a conversation means, in words the admin can act on."""
    call = call or _current.get()
    last = call.statuses[-1] if call and call.statuses else None
    if isinstance(error, EwsProblem):
        return error
    if isinstance(error, OutboundRefused):
        return EwsProblem(UNREACHABLE, str(error))
    if _untrusted(error) or isinstance(error, requests.exceptions.SSLError):
        return EwsProblem(
            UNTRUSTED,
            "The server's certificate is not trusted, so no password was sent. Exchange needs "
            "a certificate from a public certificate authority for the name entered (ask your "
            f"IT team). ({' '.join(str(error).split())[:200]})",
        )
    if isinstance(error, ews_errors.UnauthorizedError):
        return EwsProblem(
            REFUSED,
            # "Authentication unsuccessful" marks the channel as needing attention
            # (``channel_check_connection``), as an SMTP 535 does.
            "Authentication unsuccessful: Exchange refused the user name or password (HTTP "
            "401). Check the user name "
            "(DOMAIN\\user or user@example.com) and enter the password again.",
            status=401,
        )
    if isinstance(error, ews_errors.ErrorAccessDenied):
        return EwsProblem(
            DISABLED,
            "Exchange denied this mailbox access through EWS (ErrorAccessDenied). Ask your IT "
            "team to allow EWS for it (Set-CASMailbox -EWSEnabled $true).",
        )
    if call is not None and call.deadline.expired:
        return EwsProblem(UNREACHABLE, call.deadline.missed("Exchange"))
    if isinstance(error, (ews_errors.ErrorTimeoutExpired, requests.RequestException, OSError)):
        # No answer at all (exchangelib re-raises a broken connection as ErrorTimeoutExpired).
        reason = "connection refused" if "Connection refused" in str(error) else "no answer"
        return EwsProblem(UNREACHABLE, f"Could not reach Exchange ({reason}); will try again.")
    if last not in (None, 200) and isinstance(error, ews_errors.EWSError) and not answered(error):
        return _status_problem(last, "")
    if isinstance(error, ews_errors.ErrorServerBusy):
        return EwsProblem(BUSY, "Exchange is busy and asked us to slow down; will try again.")
    if answered(error):
        return EwsProblem(OTHER, f"Exchange answered {error.__class__.__name__}: {error}"[:400])
    return EwsProblem(
        OTHER, f"Exchange answered something unexpected ({error.__class__.__name__})."
    )


# --- what the kind asks -------------------------------------------------------------------------


def check_exchange(config: ExchangeOnPremConfig, password: str) -> ConnectionReport:
    """Find EWS, sign in and list the Inbox (one item, ids only): what sending and reading
    need, without changing anything."""
    steps: list[str] = []
    try:
        with conversation(config, password) as ews:
            steps = ews.steps
            try:
                list(ews.folders(Inbox).find_items(q=Q(), shape="IdOnly", max_items=1))
            except EXPECTED as error:
                raise explain(error, ews.call) from None
    except EwsProblem as problem:
        return ConnectionReport(False, problem.text, steps)
    steps.append("Signed in and listed the Inbox.")
    return ConnectionReport(True, "Exchange accepted the credentials.", steps)


def send_mime(
    config: ExchangeOnPremConfig, password: str, *, data: bytes, on_handover: Handover
) -> str:
    """Send our MIME as it is with ``CreateItem`` (``SendAndSaveCopy`` into Sent Items).
    Failures before the hand-over are retried or need attention; a request that gets no
    answer after it is ``uncertain``."""
    try:
        with conversation(config, password) as ews:
            message = Message(account=ews.account, mime_content=data)
            on_handover()
            try:
                CreateItem(account=ews.account).get(
                    items=[message],
                    folder=ews.folder(SentItems),
                    message_disposition=SEND_AND_SAVE_COPY,
                    send_meeting_invitations=SEND_TO_NONE,
                )
            except EXPECTED as error:
                raise _send_failure(error, ews.call) from None
    except EwsProblem as problem:  # before the hand-over: nothing went
        raise _as_failure(problem) from None
    return f"Sent through EWS at {urlsplit(ews.endpoint).hostname}; a copy is in Sent Items"


def _send_failure(error: BaseException, call: _Call) -> SendFailure:
    """After the hand-over: what Exchange answered, or that no answer came."""
    if answered(error):
        text = f"Exchange refused the message: {error.__class__.__name__}: {error}"
        if names_quota(text) or isinstance(error, ews_errors.ErrorQuotaExceeded):
            return SendFailure(QUOTA, text, 550)
        if isinstance(error, ews_errors.ErrorTooManyObjectsOpened):
            return SendFailure(BACKOFF, text, 503)
        if isinstance(error, ews_errors.ErrorAccessDenied):
            return _as_failure(explain(error, call))
        return SendFailure(PERMANENT, text, 550)
    problem = explain(error, call)
    if problem.kind == UNREACHABLE:
        # The request went out and no answer came back: it may have been sent.
        text = problem.text.removesuffix("; will try again.")
        return SendFailure(UNCERTAIN, f"{text}; the message may have been sent.")
    return _as_failure(problem)


def _as_failure(problem: EwsProblem) -> SendFailure:
    """An answer that took nothing (or trouble before the hand-over)."""
    if problem.kind in (REFUSED, DISABLED, UNTRUSTED, NOT_FOUND):
        return SendFailure(AUTH, problem.text, problem.status)
    if problem.kind == BUSY:
        return SendFailure(BACKOFF, problem.text, problem.status or 503)
    return SendFailure(RETRY, problem.text, problem.status)

"""Exchange on-premises (2013/2016): a connection test against EWS or Autodiscover.

Same guard as SMTP: the host is resolved once and must be public (HTTPS on 443 only), the
connection goes to the checked address, the certificate is verified for the name entered, and
credentials travel only inside TLS.
"""

from __future__ import annotations

import base64
import http.client
import ssl
from urllib.parse import urlsplit

from django.conf import settings

from channels.guard import HTTPS_PORTS, Destination, OutboundRefused, check_destination
from channels.kinds.config import ExchangeOnPremConfig
from channels.transports.deadline import Deadline, DeadlineSocket
from channels.transports.smtp import ConnectionReport, tls_context

# A harmless EWS call: the properties of the Inbox folder.
EWS_PROBE = """<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <soap:Header><t:RequestServerVersion Version="Exchange2013"/></soap:Header>
  <soap:Body><m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>
  <m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder></soap:Body>
</soap:Envelope>"""

AUTODISCOVER_PROBE = """<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request><EMailAddress>{email}</EMailAddress>
  <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request></Autodiscover>"""


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(
        self, destination: Destination, deadline: Deadline, context: ssl.SSLContext
    ) -> None:
        super().__init__(
            destination.host, destination.port, timeout=deadline.per_read, context=context
        )
        self.destination = destination
        self.deadline = deadline
        self.tls = context

    def connect(self) -> None:
        # The connect timeout (what is left of the deadline, at most the per-read timeout) stays
        # on the socket for the TLS handshake; then every write and read keeps to the deadline.
        raw = self.destination.connect(self.deadline.timeout())
        tls = self.tls.wrap_socket(raw, server_hostname=self.destination.host)
        self.sock = DeadlineSocket(tls, self.deadline)


def probe_url(config: ExchangeOnPremConfig) -> str:
    if config.autodiscover or not config.server_url:
        domain = config.email.rsplit("@", 1)[-1]
        return f"https://autodiscover.{domain}/autodiscover/autodiscover.xml"
    return config.server_url


def _trouble(
    error: OSError | http.client.HTTPException, destination: Destination, deadline: Deadline
) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {error.verify_message}"
    if deadline.expired:
        return deadline.missed("Exchange")
    if isinstance(error, TimeoutError):
        return f"no answer after {settings.MSC_OUTBOUND_TIMEOUT} s"
    if isinstance(error, ConnectionRefusedError):
        return f"Connection refused by {destination.host}."
    return f"Could not reach Exchange: {error}"


def check_exchange(config: ExchangeOnPremConfig, password: str) -> ConnectionReport:
    steps: list[str] = []
    url = urlsplit(probe_url(config))
    deadline = Deadline()
    if url.scheme != "https" or not url.hostname:
        return ConnectionReport(False, "The Exchange address must start with https://.", steps)
    try:
        destination = check_destination(url.hostname, url.port or 443, allowed_ports=HTTPS_PORTS)
    except OutboundRefused as refused:
        return ConnectionReport(False, str(refused), steps)
    steps.append(f"{destination.host} resolves to {', '.join(destination.addresses)}.")
    body = (
        EWS_PROBE
        if "autodiscover" not in url.path.lower()
        else AUTODISCOVER_PROBE.format(email=config.email)
    )
    credentials = base64.b64encode(f"{config.username}:{password}".encode()).decode()
    connection = _PinnedHTTPSConnection(destination, deadline, tls_context())
    try:
        connection.request(
            "POST",
            url.path or "/",
            body=body.encode(),
            headers={
                "Content-Type": "text/xml; charset=utf-8",
                "Authorization": f"Basic {credentials}",
            },
        )
        response = connection.getresponse()
        response.read(65536)
    except (OSError, http.client.HTTPException) as error:
        return ConnectionReport(False, _trouble(error, destination, deadline), steps)
    finally:
        connection.close()
    steps.append(
        f"TLS verified for {destination.host}; the server answered HTTP {response.status}."
    )
    if response.status == 401:
        return ConnectionReport(False, "Authentication unsuccessful (HTTP 401)", steps)
    if response.status == 200:
        return ConnectionReport(True, "Exchange accepted the credentials.", steps)
    return ConnectionReport(
        False, f"Exchange answered HTTP {response.status} {response.reason}.", steps
    )

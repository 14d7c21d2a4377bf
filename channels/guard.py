"""The one outbound guard for every user-entered host (SMTP relays, Exchange servers).

``check_destination`` resolves the name once and refuses it unless every address is public and
the port is allowed; callers then connect to the address it returns (never resolving again), so
a name cannot pass the check and then point somewhere else (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from msc_admin.stored import sentence

SMTP_PORTS = frozenset({25, 465, 587, 2525})
HTTPS_PORTS = frozenset({443})


class OutboundRefused(Exception):
    """The destination may not be contacted; the message is shown to the user as it is, in the
    language of the request that asked (English in the workers). ``field`` is what to correct:
    the host, or the port."""

    def __init__(self, message: str, *, field: str = "host") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Destination:
    host: str  # the name as entered (normalised): used for TLS SNI and certificate checks
    addresses: tuple[str, ...]  # the checked addresses; connections go only to these
    port: int

    @property
    def address(self) -> str:
        return self.addresses[0]

    def connect(self, timeout: float) -> socket.socket:
        """A TCP connection to the first checked address that answers."""
        last: OSError | None = None
        for address in self.addresses:
            try:
                return socket.create_connection((address, self.port), timeout)
            except OSError as error:
                last = error
        assert last is not None
        raise last


def normalise_host(raw: str) -> str:
    host = raw.strip().rstrip(".").lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(c in host for c in "/\\@ \t\r\n?#"):
        raise OutboundRefused(
            _("Enter a host name such as smtp.sendgrid.net, without a scheme or path.")
        )
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise OutboundRefused(
            _("%(host)s is not a valid host name.") % {"host": repr(raw)}
        ) from None


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def _allowed_in_tests(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
    """The test suite's own loopback servers, by exact address and port (settings-only, empty
    outside tests): the rest of the guard stays as in production."""
    pair = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
    return pair in settings.MSC_OUTBOUND_TEST_ALLOW


def check_destination(raw_host: str, port: int, *, allowed_ports: frozenset[int]) -> Destination:
    host = normalise_host(raw_host)
    if not 0 < port < 65536:
        raise OutboundRefused(
            sentence(gettext_noop("Port %(port)s is not a valid port number."), port=port),
            field="port",
        )
    # Sentences (``msc_admin.stored``): a send that stores why it waits stores them as such.
    unresolved = sentence(
        gettext_noop("The name %(host)s does not resolve to an address."), host=host
    )
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise OutboundRefused(unresolved) from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise OutboundRefused(unresolved)
    allow_private = settings.MSC_OUTBOUND_ALLOW_PRIVATE
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not _is_public(ip) and not allow_private and not _allowed_in_tests(ip, port):
            raise OutboundRefused(
                sentence(
                    gettext_noop(
                        "%(host)s resolves to %(ip)s, which is not a public internet address. "
                        "Enter the public host name of your mail server."
                    ),
                    host=host,
                    ip=str(ip),
                )
            )
    public = all(_is_public(ipaddress.ip_address(a.split("%", 1)[0])) for a in addresses)
    # Private destinations are only reachable in development (tests, the demo): any port there.
    if public and port not in allowed_ports:
        allowed = ", ".join(str(p) for p in sorted(allowed_ports))
        raise OutboundRefused(
            sentence(
                gettext_noop("Port %(port)s is not allowed. Use one of: %(allowed)s."),
                port=port,
                allowed=allowed,
            ),
            field="port",
        )
    return Destination(host=host, addresses=tuple(addresses), port=port)

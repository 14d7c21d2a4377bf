"""A real authoritative DNS server on loopback for the tests (UDP, built with dnspython).

``records`` maps a name to its records as zone-file text, e.g.
``{"acme.test": ["TXT \\"v=spf1 include:sendgrid.net ~all\\"", "MX 10 aspmx.l.google.com."]}``.
A name listed in ``servfail`` is answered SERVFAIL; one in ``silent`` is never answered (a
time-out). Any other name is NXDOMAIN; a name with records but none of the type asked for
answers NOERROR with no records. A CNAME is followed inside the zone. The maps may be changed
while the server runs; ``queries`` records what was asked, in order.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

TTL = 300


@dataclass
class DnsServer:
    host: str
    port: int
    records: dict[str, list[str]] = field(default_factory=dict)
    servfail: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    queries: list[tuple[str, str]] = field(default_factory=list)

    @property
    def address(self) -> str:
        """As ``MSC_DNS_NAMESERVERS`` takes it."""
        return f"{self.host}:{self.port}"

    def _rrsets(self, name: str, rdtype: dns.rdatatype.RdataType) -> list[dns.rrset.RRset]:
        found = []
        for entry in self.records.get(name, []):
            kind, _, data = entry.partition(" ")
            if dns.rdatatype.RdataType.make(kind) == rdtype:
                found.append(data)
        if not found:
            return []
        return [dns.rrset.from_text_list(name + ".", TTL, "IN", rdtype, found)]

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        self.queries.append((name, dns.rdatatype.to_text(question.rdtype)))
        for _hop in range(8):
            if name in self.silent:
                return None
            if name in self.servfail:
                response.set_rcode(dns.rcode.SERVFAIL)
                return response
            if name not in self.records:
                if not response.answer:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                return response
            exact = self._rrsets(name, question.rdtype)
            if exact:
                response.answer.extend(exact)
                return response
            alias = self._rrsets(name, dns.rdatatype.CNAME)
            if not alias:
                return response  # NOERROR, no records of that type
            response.answer.extend(alias)
            name = alias[0][0].target.to_text(omit_final_dot=True).lower()
        return response


@contextmanager
def dns_server(
    records: dict[str, list[str]] | None = None,
    *,
    servfail: set[str] | None = None,
    silent: set[str] | None = None,
) -> Iterator[DnsServer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    server = DnsServer(
        "127.0.0.1",
        sock.getsockname()[1],
        {name.lower(): list(rows) for name, rows in (records or {}).items()},
        set(servfail or ()),
        set(silent or ()),
    )
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(wire)
            except dns.exception.DNSException:  # a malformed query gets no answer, as in life
                continue
            response = server.answer(query)
            if response is not None:
                sock.sendto(response.to_wire(), peer)

    thread = threading.Thread(target=serve, name="dns-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(5)
        sock.close()

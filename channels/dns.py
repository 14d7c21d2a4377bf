"""DNS look-ups for the deliverability checks: bounded, and honest about what they could not see.

A name that does not exist, or has no record of the type asked for, is an answer: an empty list.
A look-up that times out, or that every name server refused (SERVFAIL, REFUSED), is not an
answer: ``CouldNotCheck``, which the pages show as "could not check", never as "fail".

The resolver is the system's unless ``MSC_DNS_NAMESERVERS`` names servers ("192.0.2.53" or
"127.0.0.1:5353"); the tests point it at their own authoritative server on loopback.
"""

from __future__ import annotations

import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver
from django.conf import settings


class CouldNotCheck(Exception):
    """The question got no answer (time-out, SERVFAIL, REFUSED): say so, decide nothing."""


def _nameserver(entry: str) -> dns.nameserver.Do53Nameserver:
    host, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
    return dns.nameserver.Do53Nameserver(host or entry, int(port) if port else 53)


def resolver(lifetime: float | None = None) -> dns.resolver.Resolver:
    configured = list(settings.MSC_DNS_NAMESERVERS)
    resolver = dns.resolver.Resolver(configure=not configured)
    if configured:
        resolver.nameservers = [_nameserver(entry) for entry in configured]
    resolver.lifetime = float(settings.MSC_DNS_TIMEOUT)
    if lifetime is not None:
        resolver.lifetime = max(0.05, min(resolver.lifetime, lifetime))
    resolver.timeout = min(resolver.lifetime, 2.0)
    return resolver


def lookup(name: str, rdtype: str, *, lifetime: float | None = None) -> list[str]:
    """The records of one type at ``name`` as text (TXT strings joined), or ``[]`` when the
    name or the type does not exist; ``CouldNotCheck`` when there was no answer. ``lifetime``
    shortens (never lengthens) ``MSC_DNS_TIMEOUT`` for this look-up."""
    try:
        answer = resolver(lifetime).resolve(name, rdtype, search=False, raise_on_no_answer=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.Timeout:
        raise CouldNotCheck(f"No answer for {name} ({rdtype}) in time.") from None
    except dns.resolver.NoNameservers:
        raise CouldNotCheck(f"The name servers gave no answer for {name} ({rdtype}).") from None
    except (dns.name.LabelTooLong, dns.name.EmptyLabel, dns.name.NameTooLong):
        return []
    except dns.exception.DNSException as error:
        raise CouldNotCheck(f"{name} ({rdtype}): {error}") from None
    if answer.rrset is None:
        return []
    wanted = dns.rdatatype.from_text(rdtype)
    texts: list[str] = []
    for rdata in answer.rrset:
        if rdata.rdtype != wanted:
            continue
        if wanted == dns.rdatatype.TXT:
            texts.append(b"".join(rdata.strings).decode("utf-8", "replace"))
        else:
            texts.append(rdata.to_text())
    return texts


def txt(name: str) -> list[str]:
    return lookup(name, "TXT")


def mx(name: str) -> list[tuple[int, str]]:
    """MX hosts by preference, lower-case, without the trailing dot."""
    hosts = []
    for text in lookup(name, "MX"):
        preference, _, host = text.partition(" ")
        hosts.append((int(preference), host.rstrip(".").lower()))
    return sorted(hosts)


def cname(name: str) -> str | None:
    found = lookup(name, "CNAME")
    return found[0].rstrip(".").lower() if found else None

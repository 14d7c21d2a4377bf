"""The sending-domain checks: SPF, DKIM, DMARC and MX of one domain, for the servers that send
its mail, each line pass / warn / fail / unknown ("could not check") with a sentence and, where
something is missing or wrong, the DNS record to add.

Only DNS answers decide: a time-out or SERVFAIL (``channels.dns.CouldNotCheck``) makes that line
"unknown", never "fail". A check of one domain asks for at most ``BUDGET`` times
``MSC_DNS_TIMEOUT`` seconds in all, so a silent name server cannot hold a worker or a page long.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.utils.translation import gettext, gettext_noop, ngettext_lazy

from channels import dns
from channels.domaincheck.esps import Esp
from msc_admin.stored import sentence, stored

PASS, WARN, FAIL, UNKNOWN = "pass", "warn", "fail", "unknown"
# Worst first, for a domain's overall state.
SEVERITY = {FAIL: 3, WARN: 2, UNKNOWN: 1, PASS: 0}
LABELS = {"spf": "SPF", "dkim": "DKIM", "dmarc": "DMARC", "mx": "MX"}
BUDGET = 3  # times MSC_DNS_TIMEOUT, for all look-ups of one domain
SPF_LOOKUP_LIMIT = 10  # RFC 7208, 4.6.4

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Record:
    """A DNS record to add or change, as a DNS host's form asks for it."""

    name: str
    type: str
    value: str


MX_PLACEHOLDER = gettext_noop("<your incoming mail server>")


def shown_value(value: str) -> str:
    """A record's value in the reader's language: a placeholder for what only the admin knows
    is stored in English (results are cached) and read in theirs."""
    priority, _, rest = value.partition(" ")
    if rest == MX_PLACEHOLDER:
        return f"{priority} {gettext(MX_PLACEHOLDER)}"
    return value


@dataclass(frozen=True)
class Line:
    key: str
    state: str
    message: str
    record: Record | None = None

    @property
    def label(self) -> str:
        return LABELS[self.key]

    def to_dict(self) -> dict[str, Any]:
        """What a domain check stores: its message as a sentence (``msc_admin.stored``), read
        in the reader's language (``DomainCheck.lines``)."""
        return {**asdict(self), "message": stored(self.message, 4000)}


def overall(states: list[str]) -> str:
    return max(states, key=SEVERITY.__getitem__) if states else UNKNOWN


class Asker:
    """Look-ups within one deadline: once it has passed, every further question is
    ``CouldNotCheck`` at once."""

    def __init__(self, seconds: float | None = None) -> None:
        budget = seconds if seconds is not None else BUDGET * float(settings.MSC_DNS_TIMEOUT)
        self.deadline = time.monotonic() + budget

    def __call__(self, name: str, rdtype: str) -> list[str]:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise dns.CouldNotCheck("The name servers answered too slowly; stopped asking.")
        return dns.lookup(name, rdtype, lifetime=left)

    def txt(self, name: str) -> list[str]:
        return self(name, "TXT")

    def addresses(self, name: str) -> list[Address]:
        found = self(name, "A") + self(name, "AAAA")
        return [ipaddress.ip_address(text) for text in found]

    def mx(self, name: str) -> list[str]:
        hosts = []
        for text in self(name, "MX"):
            preference, _, host = text.partition(" ")
            hosts.append((int(preference), host.rstrip(".").lower()))
        return [host for _, host in sorted(hosts)]


# --- SPF --------------------------------------------------------------------------------------

SPF_VERSION = re.compile(r"^v=spf1(\s|$)", re.IGNORECASE)


class SpfPermError(Exception):
    """The record cannot be evaluated (RFC 7208 "permerror"): SPF fails for all mail."""


@dataclass
class SpfTree:
    """What a domain's SPF record authorises, includes followed."""

    includes: set[str] = field(default_factory=set)
    networks: list[Network] = field(default_factory=list)
    lookups: int = 0

    def count(self) -> None:
        self.lookups += 1
        if self.lookups > SPF_LOOKUP_LIMIT:
            raise SpfPermError(
                f"it needs more than {SPF_LOOKUP_LIMIT} DNS look-ups (includes, a, mx), the "
                "most receivers follow"
            )

    def covers(self, address: Address) -> bool:
        return any(address in network for network in self.networks)


def spf_records(ask: Asker, domain: str) -> list[str]:
    return [text.strip() for text in ask.txt(domain) if SPF_VERSION.match(text.strip())]


def _split_term(term: str) -> tuple[str, str, str]:
    """(qualifier, name, argument) of a mechanism, or ("", modifier, value) of a modifier."""
    qualifier = "+"
    if term[:1] in "+-~?":
        qualifier, term = term[0], term[1:]
    name, sep, argument = term.partition(":")
    if not sep and "=" in term:
        name, _, argument = term.partition("=")
        return "", name.lower(), argument
    if not sep and "/" in name:  # "a/24", "mx//64": the domain's own, with a prefix length
        name, _, prefix = name.partition("/")
        argument = "/" + prefix
    return qualifier, name.lower(), argument


def _networks(addresses: list[Address], cidr4: int | None, cidr6: int | None) -> list[Network]:
    networks: list[Network] = []
    for address in addresses:
        prefix = cidr4 if address.version == 4 else cidr6
        width = prefix if prefix is not None else address.max_prefixlen
        networks.append(ipaddress.ip_network(f"{address}/{width}", strict=False))
    return networks


def _target_and_cidr(argument: str, domain: str) -> tuple[str, int | None, int | None]:
    target, cidr4, cidr6 = argument, None, None
    if "//" in target:
        target, _, six = target.partition("//")
        cidr6 = int(six)
    if "/" in target:
        target, _, four = target.partition("/")
        cidr4 = int(four)
    return (target or domain), cidr4, cidr6


def spf_walk(ask: Asker, domain: str, record: str, tree: SpfTree, depth: int = 0) -> None:
    """Add what ``record`` (``domain``'s SPF record) authorises to ``tree``."""
    if depth > SPF_LOOKUP_LIMIT:
        raise SpfPermError("its includes loop")
    redirect = ""
    has_all = False
    for term in record.split()[1:]:
        qualifier, name, argument = _split_term(term)
        if "%" in argument:  # macros depend on the message: not evaluated here
            if name in ("include", "a", "mx", "exists", "ptr", "redirect"):
                tree.count()
            continue
        try:
            if name == "include":
                tree.count()
                included = argument.lower().rstrip(".")
                tree.includes.add(included)
                found = spf_records(ask, included)
                if len(found) != 1:
                    raise SpfPermError(
                        f"its include:{included} has {'no' if not found else 'more than one'} "
                        "SPF record"
                    )
                if qualifier == "+":
                    spf_walk(ask, included, found[0], tree, depth + 1)
            elif name in ("a", "mx"):
                tree.count()
                target, cidr4, cidr6 = _target_and_cidr(argument, domain)
                hosts = [target] if name == "a" else ask.mx(target)[:10]
                for host in hosts:
                    if qualifier == "+" and host:
                        tree.networks += _networks(ask.addresses(host), cidr4, cidr6)
            elif name in ("ip4", "ip6"):
                if qualifier == "+":
                    tree.networks.append(ipaddress.ip_network(argument, strict=False))
            elif name in ("ptr", "exists"):
                tree.count()
            elif name == "all":
                has_all = True
            elif name == "redirect":
                redirect = argument.lower().rstrip(".")
        except ValueError:
            raise SpfPermError(f"“{term}” is not a valid SPF term") from None
    if redirect and not has_all:
        tree.count()
        found = spf_records(ask, redirect)
        if len(found) != 1:
            raise SpfPermError(f"its redirect={redirect} has no single SPF record")
        tree.includes.add(redirect)
        spf_walk(ask, redirect, found[0], tree, depth + 1)


def with_term(record: str, term: str) -> str:
    """``record`` with ``term`` added before its closing ``all`` or ``redirect=``."""
    parts = record.split()
    at = len(parts)
    for index, part in enumerate(parts[1:], start=1):
        _, name, _ = _split_term(part)
        if name in ("all", "redirect"):
            at = index
            break
    return " ".join([*parts[:at], term, *parts[at:]])


def _merged(records: list[str]) -> str:
    terms: list[str] = []
    closing = "~all"
    for record in records:
        for term in record.split()[1:]:
            _, name, _ = _split_term(term)
            if name in ("all", "redirect"):
                closing = closing if closing != "~all" else term
            elif term not in terms:
                terms.append(term)
    return " ".join(["v=spf1", *terms, closing])


def check_spf(ask: Asker, domain: str, *, host: str, esp: Esp | None) -> Line:
    sender = esp.name if esp else host
    needed = f"include:{esp.spf_include}" if esp else f"a:{host}"
    records = spf_records(ask, domain)
    if not records:
        return Line(
            "spf",
            FAIL,
            sentence(
                gettext_noop(
                    "%(domain)s has no SPF record, so receiving servers cannot tell that "
                    "%(sender)s may send its mail. Add this TXT record:"
                ),
                domain=domain,
                sender=sender,
            ),
            Record(domain, "TXT", f"v=spf1 {needed} ~all"),
        )
    if len(records) > 1:
        merged = _merged(sorted(records))
        if needed not in merged.split():
            merged = with_term(merged, needed)
        return Line(
            "spf",
            FAIL,
            sentence(
                gettext_noop(
                    "%(domain)s has %(n)s SPF records. Receivers treat that as an error and SPF "
                    "fails for all its mail. Replace them with one TXT record:"
                ),
                domain=domain,
                n=len(records),
            ),
            Record(domain, "TXT", merged),
        )
    record = records[0]
    closing = [t for t in record.split()[1:] if _split_term(t)[1] == "all"]
    if closing and _split_term(closing[-1])[0] == "+":
        fixed = " ".join("~all" if t == closing[-1] else t for t in record.split())
        return Line(
            "spf",
            FAIL,
            sentence(
                gettext_noop(
                    "%(domain)s's SPF record ends in %(term)s, which lets any server in the world "
                    "send as it. End it with ~all (or -all) instead:"
                ),
                domain=domain,
                term=closing[-1],
            ),
            Record(domain, "TXT", fixed),
        )
    tree = SpfTree()
    try:
        spf_walk(ask, domain, record, tree)
    except SpfPermError as error:
        return Line(
            "spf",
            FAIL,
            sentence(
                gettext_noop(
                    "%(domain)s's SPF record cannot be evaluated: %(error)s. Receivers then fail "
                    "SPF for all its mail."
                ),
                domain=domain,
                error=str(error),
            ),
        )
    if esp:
        if tree.includes & set(esp.spf_domains):
            said = gettext_noop("%(domain)s's SPF record authorises %(esp)s (%(needed)s).")
            return Line("spf", PASS, sentence(said, domain=domain, esp=esp.name, needed=needed))
        return Line(
            "spf",
            FAIL,
            sentence(
                gettext_noop(
                    "%(domain)s's SPF record does not authorise %(esp)s: add %(needed)s to it."
                ),
                domain=domain,
                esp=esp.name,
                needed=needed,
            ),
            Record(domain, "TXT", with_term(record, needed)),
        )
    addresses = ask.addresses(host)
    if not addresses:
        return Line(
            "spf",
            WARN,
            sentence(
                gettext_noop(
                    "%(host)s has no address in DNS, so whether %(domain)s's SPF record covers it "
                    "cannot be told."
                ),
                host=host,
                domain=domain,
            ),
        )
    missing = [str(a) for a in addresses if not tree.covers(a)]
    if not missing:
        listed = ", ".join(str(a) for a in addresses)
        said = gettext_noop("%(domain)s's SPF record covers %(host)s (%(listed)s).")
        return Line("spf", PASS, sentence(said, domain=domain, host=host, listed=listed))
    return Line(
        "spf",
        FAIL,
        sentence(
            gettext_noop(
                "%(domain)s's SPF record does not cover %(host)s (%(missing)s): add %(needed)s."
            ),
            domain=domain,
            host=host,
            missing=", ".join(missing),
            needed=needed,
        ),
        Record(domain, "TXT", with_term(record, needed)),
    )


# --- DKIM -------------------------------------------------------------------------------------


def _tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


def check_dkim(ask: Asker, domain: str, *, esp: Esp | None, selector: str) -> Line:
    documented = esp.dkim_selectors if esp else ()
    selectors = list(dict.fromkeys(s for s in (selector, *documented) if s))
    if not selectors:
        said = (
            sentence(
                gettext_noop(
                    "Which DKIM selector %(esp)s signs %(domain)s's mail with is not known here. "
                    "Enter it below (the name before ._domainkey) to check the key."
                ),
                esp=esp.name,
                domain=domain,
            )
            if esp
            else sentence(
                gettext_noop(
                    "Which DKIM selector your mail server signs %(domain)s's mail with is not "
                    "known here. Enter it below (the name before ._domainkey) to check the key."
                ),
                domain=domain,
            )
        )
        return Line("dkim", WARN, said)
    found: list[str] = []
    revoked: list[str] = []
    for name in (f"{s}._domainkey.{domain}" for s in selectors):
        for text in ask.txt(name):
            tags = _tags(text)
            if "p" not in tags:
                continue
            (found if tags["p"] else revoked).append(name)
    if found:
        published = gettext_noop("%(domain)s publishes a DKIM key at %(name)s.")
        return Line("dkim", PASS, sentence(published, domain=domain, name=found[0]))
    first = f"{selectors[0]}._domainkey.{domain}"
    kind = "CNAME" if esp and esp.key in ("sendgrid", "mailgun", "ses") else "TXT"
    value = (
        esp.dkim_hint
        if esp and esp.dkim_hint
        else "v=DKIM1; k=rsa; p=<the public key your mail server signs with>"
    )
    if revoked:
        return Line(
            "dkim",
            FAIL,
            sentence(
                gettext_noop(
                    "The DKIM key at %(name)s is revoked (its p= is empty), so mail signed with it "
                    "fails DKIM. Publish the current key:"
                ),
                name=revoked[0],
            ),
            Record(revoked[0], kind, value),
        )
    tried = ", ".join(selectors)
    return Line(
        "dkim",
        FAIL,
        sentence(
            ngettext_lazy(
                "%(domain)s has no DKIM key at the selector %(tried)s, so receivers cannot verify "
                "its mail's signature. Add:",
                "%(domain)s has no DKIM key at the selectors %(tried)s, so receivers cannot "
                "verify its mail's signature. Add:",
                "n",
            ),
            domain=domain,
            tried=tried,
            n=len(selectors),
        ),
        Record(first, kind, value),
    )


# --- DMARC ------------------------------------------------------------------------------------


def _with_tag(record: str, tag: str, value: str) -> str:
    parts = [p.strip() for p in record.split(";") if p.strip()]
    if any(p.lower().startswith(f"{tag}=") for p in parts):
        return "; ".join(f"{tag}={value}" if p.lower().startswith(f"{tag}=") else p for p in parts)
    return "; ".join([parts[0], f"{tag}={value}", *parts[1:]])


def check_dmarc(ask: Asker, domain: str, *, esp: Esp | None) -> Line:
    name = f"_dmarc.{domain}"
    records = [t.strip() for t in ask.txt(name) if t.strip().lower().startswith("v=dmarc1")]
    if not records:
        return Line(
            "dmarc",
            WARN,
            sentence(
                gettext_noop(
                    "%(domain)s has no DMARC record, so receivers have no policy for mail that "
                    "fails SPF and DKIM (and Gmail and Yahoo expect one from bulk senders). Start "
                    "by monitoring:"
                ),
                domain=domain,
            ),
            Record(name, "TXT", f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"),
        )
    if len(records) > 1:
        return Line(
            "dmarc",
            FAIL,
            sentence(
                gettext_noop(
                    "%(domain)s has %(n)s DMARC records, so receivers ignore them all. Keep one:"
                ),
                domain=domain,
                n=len(records),
            ),
            Record(name, "TXT", records[0]),
        )
    record = records[0]
    tags = _tags(record)
    policy = tags.get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return Line(
            "dmarc",
            FAIL,
            sentence(
                gettext_noop(
                    "%(domain)s's DMARC record has no valid policy (p=none, quarantine or "
                    "reject), so receivers ignore it. Use:"
                ),
                domain=domain,
            ),
            Record(name, "TXT", _with_tag(record, "p", "none")),
        )
    if policy == "none":
        return Line(
            "dmarc",
            WARN,
            sentence(
                gettext_noop(
                    "%(domain)s's DMARC policy is p=none: receivers only report, and mail that "
                    "fails goes on to the inbox. Once the reports show your mail passing, ask "
                    "them to quarantine it:"
                ),
                domain=domain,
            ),
            Record(name, "TXT", _with_tag(record, "p", "quarantine")),
        )
    strict = [label for tag, label in (("aspf", "SPF"), ("adkim", "DKIM")) if tags.get(tag) == "s"]
    if esp and strict:
        relaxed = record
        for tag in ("aspf", "adkim"):
            if tags.get(tag) == "s":
                relaxed = _with_tag(relaxed, tag, "r")
        return Line(
            "dmarc",
            WARN,
            sentence(
                gettext_noop(
                    "%(domain)s's DMARC record asks for strict SPF and DKIM alignment. %(esp)s "
                    "sends with its own return-path (bounce) domain or a subdomain of yours, "
                    "which strict alignment does not accept, so DMARC can fail for its mail. "
                    "Relaxed alignment:"
                )
                if len(strict) > 1
                else gettext_noop(
                    "%(domain)s's DMARC record asks for strict %(what)s alignment. %(esp)s sends "
                    "with its own return-path (bounce) domain or a subdomain of yours, which "
                    "strict alignment does not accept, so DMARC can fail for its mail. Relaxed "
                    "alignment:"
                ),
                domain=domain,
                esp=esp.name,
                what=strict[0],
            ),
            Record(name, "TXT", relaxed),
        )
    return Line(
        "dmarc",
        PASS,
        sentence(
            gettext_noop(
                "%(domain)s's DMARC policy is p=reject: receivers reject mail that fails SPF and "
                "DKIM alignment."
            )
            if policy == "reject"
            else gettext_noop(
                "%(domain)s's DMARC policy is p=quarantine: receivers quarantine mail that fails "
                "SPF and DKIM alignment."
            ),
            domain=domain,
        ),
    )


# --- MX ---------------------------------------------------------------------------------------


def check_mx(ask: Asker, domain: str) -> Line:
    hosts = ask.mx(domain)
    if not hosts:
        return Line(
            "mx",
            WARN,
            sentence(
                gettext_noop(
                    "%(domain)s has no MX record, so replies and bounces to its addresses cannot "
                    "come back. Add one for the server that receives its mail:"
                ),
                domain=domain,
            ),
            Record(domain, "MX", f"10 {MX_PLACEHOLDER}"),
        )
    if hosts == [""]:
        return Line(
            "mx",
            WARN,
            sentence(
                gettext_noop(
                    "%(domain)s says it receives no mail (a null MX), so replies and bounces to "
                    "its addresses are refused."
                ),
                domain=domain,
            ),
        )
    said = (
        sentence(
            gettext_noop("%(domain)s receives mail at %(host)s, so replies and bounces come back."),
            domain=domain,
            host=hosts[0],
        )
        if len(hosts) == 1
        else sentence(
            ngettext_lazy(
                "%(domain)s receives mail at %(host)s (and %(n)s more), so replies and bounces "
                "come back.",
                "%(domain)s receives mail at %(host)s (and %(n)s more), so replies and bounces "
                "come back.",
                "n",
            ),
            domain=domain,
            host=hosts[0],
            n=len(hosts) - 1,
        )
    )
    return Line("mx", PASS, said)


# --- a domain ---------------------------------------------------------------------------------


def _guarded(key: str, check: Callable[[], Line]) -> Line:
    try:
        return check()
    except dns.CouldNotCheck as error:
        said = gettext_noop("Could not check %(what)s: %(error)s")
        return Line(key, UNKNOWN, sentence(said, what=LABELS[key], error=str(error)))


def check_domain(domain: str, *, host: str, esp: Esp | None, selector: str = "") -> list[Line]:
    """The four lines for ``domain``, sent through ``host`` (of ``esp`` when known)."""
    ask = Asker()
    return [
        _guarded("spf", lambda: check_spf(ask, domain, host=host, esp=esp)),
        _guarded("dkim", lambda: check_dkim(ask, domain, esp=esp, selector=selector)),
        _guarded("dmarc", lambda: check_dmarc(ask, domain, esp=esp)),
        _guarded("mx", lambda: check_mx(ask, domain)),
    ]

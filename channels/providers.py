"""Which provider runs a receiving domain's mailboxes: Google, Microsoft, Yahoo or another.

Well-known consumer domains (gmail.com, outlook.com, yahoo.*, …) are known without a look-up.
Any other domain is classified by its MX hosts (Google Workspace's are Google's, a Microsoft 365
tenant's end in ``.mail.protection.outlook.com``), looked up in the background
(``domains_classify``) and cached in ``ReceivingDomain`` for ``RECHECK``. A look-up that could
not check (time-out, SERVFAIL) leaves the domain *unknown* and is tried again after
``RETRY_UNKNOWN``. Sending never waits for DNS: ``provider_of`` reads the cache only, and a
domain not classified yet counts as unknown (no provider's cap or pause applies to it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import connection, models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from channels import dns
from msc_admin import bulk

GOOGLE, MICROSOFT, YAHOO, OTHER, UNKNOWN = "google", "microsoft", "yahoo", "other", "unknown"

# The groups an admin may cap or that a bounce spike may pause, by name.
GROUPS = {GOOGLE: "Google", MICROSOFT: "Microsoft", YAHOO: "Yahoo"}
# Plain English: the apps that read them write them into stored text (holds, spike subjects).
NAMES = {**GROUPS, OTHER: "Other providers", UNKNOWN: "Not classified yet"}
# The same as pages show them, in the reader's language.
_SHOWN = {OTHER: _("Other providers"), UNKNOWN: _("Not classified yet")}


def shown_name(provider: str) -> str:
    """A provider group's name on a page, in the reader's language (``NAMES`` stays English)."""
    return str(_SHOWN.get(provider) or NAMES.get(provider, provider))


CONSUMER = {
    GOOGLE: ("gmail.com", "googlemail.com"),
    MICROSOFT: (
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "hotmail.co.uk",
        "hotmail.fr",
        "live.co.uk",
        "outlook.fr",
        "outlook.de",
    ),
    YAHOO: ("ymail.com", "rocketmail.com", "aol.com", "aim.com"),
}
_CONSUMER = {domain: provider for provider, domains in CONSUMER.items() for domain in domains}
_YAHOO_PREFIX = "yahoo."  # yahoo.com, yahoo.co.uk, yahoo.fr, …

# MX host suffixes of each provider's mail servers.
MX_SUFFIXES = {
    GOOGLE: (".google.com", ".googlemail.com"),
    MICROSOFT: (".mail.protection.outlook.com", ".olc.protection.outlook.com", ".outlook.com"),
    YAHOO: (".yahoodns.net",),
}


class CapPeriod(models.TextChoices):
    HOUR = "hour", _("an hour")
    DAY = "day", _("a day")


CAP_SECONDS = {CapPeriod.HOUR: 3600, CapPeriod.DAY: 86_400}

RECHECK = timedelta(days=7)
RETRY_UNKNOWN = timedelta(hours=1)


def consumer_provider(domain: str) -> str | None:
    """The provider of a well-known consumer domain, without a look-up; else None."""
    domain = domain.lower()
    if domain in _CONSUMER:
        return _CONSUMER[domain]
    return YAHOO if domain.startswith(_YAHOO_PREFIX) else None


def provider_of_mx(hosts: Iterable[str]) -> str:
    """Google, Microsoft or Yahoo when the most preferred MX host is theirs, else other."""
    for host in hosts:
        name = "." + host.lower().rstrip(".")
        for provider, suffixes in MX_SUFFIXES.items():
            if name.endswith(suffixes):
                return provider
        return OTHER  # the most preferred host decides
    return OTHER  # no MX: nobody's mailboxes


def provider_q(provider: str, field: str = "to_domain") -> Q:
    """The rows whose ``field`` is a domain of ``provider``: its consumer domains, and every
    domain whose MX was found to be its (a subquery on the cache)."""
    from channels.models import ReceivingDomain

    classified = ReceivingDomain.objects.filter(provider=provider).values("domain")
    found = Q(**{f"{field}__in": classified})
    found |= Q(**{f"{field}__in": CONSUMER.get(provider, ())})
    if provider == YAHOO:
        found |= Q(**{f"{field}__startswith": _YAHOO_PREFIX})
    return found


def provider_of(domain: str) -> str:
    """From what is known already, never DNS: consumer domains, then the cache."""
    from channels.models import ReceivingDomain

    if known := consumer_provider(domain):
        return known
    row = ReceivingDomain.objects.filter(domain=domain.lower()).values_list("provider").first()
    return row[0] if row else UNKNOWN


def providers_of(domains: Iterable[str]) -> dict[str, str]:
    """``provider_of`` for many domains, in one query."""
    from channels.models import ReceivingDomain

    found: dict[str, str] = {}
    rest = []
    for domain in {d.lower() for d in domains}:
        if known := consumer_provider(domain):
            found[domain] = known
        else:
            rest.append(domain)
    if not rest:  # consumer domains only: nothing to look up
        return found
    if connection.vendor == "postgresql":
        # Every batch of bounces asks (``bounces.spikes.check_providers``): one prepared
        # statement, the domains bound as one array; the ORM compiled the query anew each time.
        with bulk.statement_cursor() as cursor:
            cursor.execute(
                f"SELECT domain, provider FROM {ReceivingDomain._meta.db_table}"  # noqa: S608
                " WHERE domain = ANY(%s)",
                [sorted(rest)],
            )
            cached = dict(cursor.fetchall())
    else:
        found_rows = ReceivingDomain.objects.filter(domain__in=rest)
        cached = dict(found_rows.values_list("domain", "provider"))
    found.update({domain: cached.get(domain, UNKNOWN) for domain in rest})
    return found


def classify(domain: str) -> tuple[str, str]:
    """(provider, MX host) by a DNS look-up now; ``dns.CouldNotCheck`` when there is no answer."""
    if known := consumer_provider(domain):
        return known, ""
    hosts = [host for _, host in dns.mx(domain)]
    return provider_of_mx(hosts), hosts[0] if hosts else ""


def due(domains: Iterable[str], now: datetime | None = None) -> list[str]:
    """Which of these domains need a look-up: not consumer ones, not classified in the last
    ``RECHECK``, and not tried without an answer in the last ``RETRY_UNKNOWN``."""
    from channels.models import ReceivingDomain

    now = now or timezone.now()
    wanted = {d.lower() for d in domains if d and consumer_provider(d) is None}
    fresh = ReceivingDomain.objects.filter(domain__in=wanted).filter(
        Q(checked_at__gt=now - RECHECK) & ~Q(provider=UNKNOWN)
        | Q(provider=UNKNOWN, checked_at__gt=now - RETRY_UNKNOWN)
    )
    return sorted(wanted - set(fresh.values_list("domain", flat=True)))


def domains_classify(domains: Iterable[str], now: datetime | None = None) -> dict[str, str]:
    """Look up each domain that is due (``due``) and cache what was found; returns
    domain -> provider for those looked up (unknown where the look-up could not check)."""
    from channels.models import ReceivingDomain

    now = now or timezone.now()
    found = {}
    for domain in due(domains, now):
        try:
            provider, host = classify(domain)
            detail = ""
        except dns.CouldNotCheck as error:
            before = ReceivingDomain.objects.filter(domain=domain).exclude(provider=UNKNOWN)
            # What was known stays known (MX records rarely move), tried again in an hour.
            if before.update(checked_at=now - RECHECK + RETRY_UNKNOWN, detail=str(error)[:300]):
                continue
            provider, host, detail = UNKNOWN, "", str(error)[:300]
        ReceivingDomain.objects.update_or_create(
            domain=domain,
            defaults={"provider": provider, "mx_host": host, "checked_at": now, "detail": detail},
        )
        found[domain] = provider
    return found

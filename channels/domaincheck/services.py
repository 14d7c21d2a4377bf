"""Checking the sending domains of a channel, and storing what was found.

The look-ups run outside any transaction (they may wait on DNS); only the store is atomic. A
line that could not be checked this time keeps the last definite result, with the date of the
attempt that got no answer (``SendingDomainCheck.checks``). Nothing here ever holds mail back.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from channels import kinds
from channels.domaincheck.checks import UNKNOWN, Line, check_domain, overall
from channels.domaincheck.esps import Esp, esp_for_host
from channels.models import Channel, ChannelStatus, Identity, SendingDomainCheck
from msc_admin.enqueue import after_commit
from msc_admin.stored import stored

RECHECK_AFTER = timedelta(hours=24)


def checkable(channel: Channel) -> bool:
    return channel.kind_spec.domain_check and channel.status != ChannelStatus.DISABLED


def sending_domains(channel: Channel) -> list[str]:
    """The domains ``channel`` sends mail From: its configured sending domain, the identities
    that chose it and, for the team channel used by all members, their default identities
    that chose no other."""
    domains = set()
    if channel.smtp.sending_domain:  # custom SMTP's own setting
        domains.add(channel.smtp.sending_domain.lower())
    senders = Q(channel=channel)
    if channel.is_team and channel.use_for_all_members:
        senders |= Q(is_default=True, channel__isnull=True)
    for email in Identity.objects.filter(senders, tenant_id=channel.tenant_id).values_list(
        "email", flat=True
    ):
        domains.add(email.rpartition("@")[2].lower())
    return sorted(d for d in domains if d)


def sending_host(channel: Channel) -> tuple[str, Esp | None]:
    """The server that hands the channel's mail to the world, and its provider when known."""
    host = channel.kind_spec.relay_host(channel)
    return host, esp_for_host(host)


def _merged(
    previous: list[dict[str, Any]], lines: list[Line], now: datetime
) -> list[dict[str, Any]]:
    before = {item.get("key"): item for item in previous}
    merged = []
    for line in lines:
        item = {**line.to_dict(), "checked_at": now.isoformat()}
        old = before.get(line.key)
        if line.state == UNKNOWN and old and old.get("state") != UNKNOWN:
            item = {**old, "retry_at": now.isoformat(), "retry_message": stored(line.message, 4000)}
        merged.append(item)
    return merged


def sending_domains_check(
    *, channel: Channel, domain: str = "", selector: str | None = None
) -> list[SendingDomainCheck]:
    """Look up the channel's sending domains (only ``domain`` when given, with the DKIM
    ``selector`` the admin entered for it) and store the results. Returns the channel's rows."""
    domains = sending_domains(channel) if checkable(channel) else []
    host, esp = sending_host(channel)
    known = dict(
        SendingDomainCheck.objects.filter(channel=channel).values_list("domain", "dkim_selector")
    )
    wanted = [domain] if domain in domains else [] if domain else domains
    results: dict[str, tuple[str, list[Line]]] = {}
    for name in wanted:
        chosen = selector if selector is not None and name == domain else known.get(name, "")
        results[name] = (chosen, check_domain(name, host=host, esp=esp, selector=chosen))
    return _store(channel=channel, domains=domains, results=results)


@transaction.atomic
def _store(
    *, channel: Channel, domains: list[str], results: dict[str, tuple[str, list[Line]]]
) -> list[SendingDomainCheck]:
    rows = SendingDomainCheck.objects.filter(channel=channel)
    rows.exclude(domain__in=domains).delete()  # domains it no longer sends for
    now = timezone.now()
    for domain, (selector, lines) in results.items():
        row, _ = SendingDomainCheck.objects.select_for_update().get_or_create(
            channel=channel, domain=domain, defaults={"tenant_id": channel.tenant_id}
        )
        row.dkim_selector = selector
        row.checks = _merged(row.checks, lines, now)
        row.state = overall([item["state"] for item in row.checks])
        row.checked_at = now
        row.save()
    return list(rows.all())


def sending_domains_check_later(*, channel: Channel | None) -> None:
    """Check the channel's domains in a worker once the current transaction commits (after it
    is saved, or an identity chose it)."""
    if channel is None or not checkable(channel):
        return
    from channels.tasks import check_sending_domains

    after_commit(check_sending_domains, channel.pk)


def sending_domains_recheck_due(*, now: datetime | None = None) -> list[int]:
    """Hand each channel whose domains were last checked a day ago or more (or never) to a
    worker. Returns their ids."""
    cutoff = (now or timezone.now()) - RECHECK_AFTER
    due = list(
        Channel.objects.filter(kind__in=kinds.values(domain_check=True))
        .exclude(status=ChannelStatus.DISABLED)
        .filter(Q(domain_checks__isnull=True) | Q(domain_checks__checked_at__lt=cutoff))
        .order_by("pk")
        .values_list("pk", flat=True)
        .distinct()
    )
    from channels.tasks import check_sending_domains

    for pk in due:
        after_commit(check_sending_domains, pk)
    return due

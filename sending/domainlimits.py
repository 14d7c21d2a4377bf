"""Limits by receiving domain: the team's caps per provider or domain, and providers paused by a
bounce spike. Checked once per message by the pipeline, after its channel's own throttles.

A cap (``channels.DomainCap``) counts the tenant's sends through every channel in a rolling hour
or day, as the channels' rolling windows do (``sending.quota``): one ``DomainCapSlot`` per send,
taken under the cap's row lock (every worker on every machine takes its turn), slots that have
left the window deleted first. A full cap holds the message until its ``limit``-th newest slot
leaves the window, without spending a try; mail to other domains keeps going. A message keeps
the slot of its first try when it is tried again. The slots of every cap that covers the
recipient are taken together, or none.

The recipient's provider is read from what is already known (``channels.providers``), never
looked up here: a domain not classified yet is classified in the background and, until then,
no provider's cap or pause applies to it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from analytics.models import DomainRollup
from channels import providers
from channels.models import DomainCap, TeamSendingSettings
from msc_admin import bulk, enqueue
from msc_admin.stored import sentence, stored
from sending.models import DomainCapSlot, Hold, Message, MessageStatus

# A domain not classified yet is handed to the background once per this many seconds.
CLASSIFY_QUIET = 300


@dataclass(frozen=True)
class DomainHeld:
    hold: str  # Hold.DOMAIN_CAP or Hold.PROVIDER
    label: str  # "At most 200 an hour to Google mailboxes"
    until: datetime | None  # None: until an admin resumes the provider


class _Full(Exception):
    def __init__(self, cap: DomainCap, until: float) -> None:
        self.cap, self.until = cap, until


_LOCK = "SELECT id FROM delivery_channels_domaincap WHERE id = %s"
_PRUNE = "DELETE FROM sending_domaincapslot WHERE cap_id = %s AND at <= %s"
_MINE = "SELECT 1 FROM sending_domaincapslot WHERE cap_id = %s AND message_id = %s"
_COUNT = "SELECT count(*) FROM sending_domaincapslot WHERE cap_id = %s"
_LIMIT_TH = (
    "SELECT at FROM sending_domaincapslot WHERE cap_id = %s ORDER BY at DESC LIMIT 1 OFFSET %s"
)
_TAKE = "INSERT INTO sending_domaincapslot (cap_id, message_id, at) VALUES (%s, %s, %s)"


def _take(cursor: CursorWrapper, cap: DomainCap, message_id: int, now: float) -> None:
    # The cap's row is its lock (PostgreSQL); SQLite, the embedded demo's, has one writer at a
    # time and no row locks.
    locks = " FOR NO KEY UPDATE" if connection.features.has_select_for_no_key_update else ""
    cursor.execute(_LOCK + locks, [cap.pk])
    if cursor.fetchone() is None:  # removed meanwhile: nothing to count
        return
    cursor.execute(_PRUNE, [cap.pk, now - cap.seconds])
    cursor.execute(_MINE, [cap.pk, message_id])
    if cursor.fetchone() is not None:
        return
    cursor.execute(_COUNT, [cap.pk])
    (inside,) = cursor.fetchone()
    if inside >= cap.limit:
        cursor.execute(_LIMIT_TH, [cap.pk, cap.limit - 1])
        (frees,) = cursor.fetchone()
        raise _Full(cap, float(frees) + cap.seconds)
    cursor.execute(_TAKE, [cap.pk, message_id, now])


# The team's caps and paused providers in one query (one row even with neither): every send
# asks, and most teams have neither. ``more`` adds a caller's scalar look-ups (what stops the
# send, ``sending.services.send_stoppers``) to the same statement.
_LIMITS = """
SELECT s.paused_providers, c.id, c."limit", c.period, c.provider, c.domains{more}
FROM (SELECT 1) AS one
LEFT JOIN delivery_channels_teamsendingsettings s ON s.tenant_id = %(tenant)s
LEFT JOIN delivery_channels_domaincap c ON c.tenant_id = %(tenant)s
ORDER BY c.id
"""

Limits = tuple[list[DomainCap], list[str]]

# The same, as two columns of a caller's statement for the tenant ``{tenant}`` names (the claim
# of a send, ``sending.pipeline``): its paused providers, and its caps as one JSON array.
# ``limits_from`` reads them.
LIMITS_COLUMNS = """
(SELECT s.paused_providers FROM delivery_channels_teamsendingsettings s
    WHERE s.tenant_id = {tenant}),
(SELECT json_agg(json_build_array(c.id, c."limit", c.period, c.provider, c.domains) ORDER BY c.id)
    FROM delivery_channels_domaincap c WHERE c.tenant_id = {tenant})"""


def limits_from(tenant_id: int, paused: Any, caps: Any) -> Limits:
    """The team's limits from the two columns of ``LIMITS_COLUMNS``."""
    return (
        [
            DomainCap(
                pk=pk,
                tenant_id=tenant_id,
                limit=limit,
                period=period,
                provider=provider,
                domains=_json(domains),
            )
            for pk, limit, period, provider, domains in _json(caps) or []
        ],
        _json(paused) or [],
    )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def limits_read(
    tenant_id: int, more: str = "", params: dict[str, Any] | None = None
) -> tuple[Limits, tuple[Any, ...]]:
    """The team's caps and paused providers, and the values of ``more`` (further columns,
    scalar look-ups with their named ``params``), in one statement."""
    with bulk.statement_cursor() as cursor:
        cursor.execute(_LIMITS.format(more=more), {"tenant": tenant_id, **(params or {})})
        rows = cursor.fetchall()
    paused = _json(rows[0][0]) or []
    caps = [
        DomainCap(
            pk=pk,
            tenant_id=tenant_id,
            limit=limit,
            period=period,
            provider=provider,
            domains=_json(domains),
        )
        for _, pk, limit, period, provider, domains, *_ in rows
        if pk is not None
    ]
    return (caps, paused), tuple(rows[0][6:])


def check(
    message: Message, now: float | None = None, *, limits: Limits | None = None
) -> DomainHeld | None:
    """None when the message may go to its recipient's domain now (a slot taken in every cap
    that covers it); else why and until when it waits. ``limits``: the team's, if already read
    (``limits_read``)."""
    caps, paused = limits if limits is not None else limits_read(message.tenant_id)[0]
    if not caps and not paused:
        return None
    domain = message.to_domain.lower()
    provider = providers.UNKNOWN
    if paused or any(cap.provider for cap in caps):
        provider = providers.provider_of(domain)
        if provider == providers.UNKNOWN and cache.add(f"classify:{domain}", 1, CLASSIFY_QUIET):
            enqueue.after_commit(_classify_task(), [domain], robust=True)
    if provider in paused:
        name = providers.NAMES[provider]
        text = gettext(
            "Sending to %(name)s mailboxes is paused after a bounce spike; an admin can review "
            "the bounces and resume it"
        )
        return DomainHeld(Hold.PROVIDER, text % {"name": name}, None)
    covering = [cap for cap in caps if cap.covers(domain, provider)]
    if not covering:
        return None
    now = time.time() if now is None else now
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            for cap in covering:
                _take(cursor, cap, message.pk, now)
    except _Full as full:
        return DomainHeld(
            Hold.DOMAIN_CAP, full.cap.label, datetime.fromtimestamp(full.until, tz=UTC)
        )
    return None


def _classify_task() -> Any:
    from channels import tasks

    return tasks.classify_domains


def slots_recount(cap: DomainCap, now: float | None = None) -> int:
    """A cap was added: it counts the tenant's mail already sent in its window to what it
    covers (as a channel's new limit does, ``quota.windows_recount``). Returns how many."""
    now = time.time() if now is None else now
    since = datetime.fromtimestamp(now - cap.seconds, tz=UTC)
    sent = Message.objects.filter(tenant_id=cap.tenant_id, sent_at__gt=since)
    if cap.provider:
        sent = sent.filter(providers.provider_q(cap.provider))
    else:
        sent = sent.filter(to_domain__in=cap.domains)
    slots = [
        DomainCapSlot(cap=cap, message_id=pk, at=at.timestamp())
        for pk, at in sent.order_by().values_list("pk", "sent_at")
    ]
    DomainCapSlot.objects.bulk_create(slots, ignore_conflicts=True)
    return len(slots)


# Look-ups per run of ``classify_recent``, each bounded by ``MSC_DNS_TIMEOUT``.
CLASSIFY_PER_RUN = 20
RECENT_DAYS = 30


def classify_recent() -> int:
    """Classify (``providers.domains_classify``) the receiving domains due a look-up among those
    of queued mail and of the mail sent in the last ``RECENT_DAYS`` (from the daily roll-ups,
    not the messages). Returns how many were looked up."""
    since = timezone.localdate() - timedelta(days=RECENT_DAYS)
    queued = Message.objects.filter(status=MessageStatus.QUEUED).values_list("to_domain")
    sent = DomainRollup.objects.filter(day__gte=since).values_list("domain")
    domains = set(queued.distinct().order_by()) | set(sent.distinct().order_by())
    wanted = providers.due([domain for (domain,) in domains])[:CLASSIFY_PER_RUN]
    return len(providers.domains_classify(wanted))


PROVIDER_PAUSED = gettext_lazy(
    "Waiting: sending to %(name)s mailboxes is paused after a bounce spike (%(why)s). An admin "
    "can review the bounces and resume it."
)


@transaction.atomic
def provider_pause(*, tenant_id: int, provider: str, why: str) -> int:
    """Mail to ``provider``'s mailboxes waits (a bounce spike): the provider joins the team's
    paused ones and the queued mail to it is held until an admin resumes it. Returns how many
    messages were held."""
    team, _ = TeamSendingSettings.objects.select_for_update().get_or_create(tenant_id=tenant_id)
    if provider not in team.paused_providers:
        team.paused_providers = [*team.paused_providers, provider]
        team.save(update_fields=["paused_providers"])
    detail = sentence(PROVIDER_PAUSED, name=providers.NAMES[provider], why=why)
    queued = Message.objects.filter(tenant_id=tenant_id, status=MessageStatus.QUEUED)
    return (
        queued.filter(providers.provider_q(provider))
        .exclude(hold__in=[Hold.PAUSED, Hold.CHANNEL, Hold.AUTH, Hold.SPIKE])
        .update(
            hold=Hold.PROVIDER,
            next_attempt_at=None,
            dispatched_at=None,
            status_detail=stored(detail),
        )
    )


@transaction.atomic
def provider_resume(*, tenant_id: int, provider: str) -> int:
    """Mail to ``provider``'s mailboxes goes again: its held messages are due now. Returns how
    many."""
    team = TeamSendingSettings.objects.select_for_update().filter(tenant_id=tenant_id).first()
    if team is not None and provider in team.paused_providers:
        team.paused_providers = [p for p in team.paused_providers if p != provider]
        team.save(update_fields=["paused_providers"])
    held = Message.objects.filter(
        tenant_id=tenant_id, status=MessageStatus.QUEUED, hold=Hold.PROVIDER
    )
    for still in team.paused_providers if team is not None else []:
        held = held.exclude(providers.provider_q(still))
    return held.update(
        hold=Hold.NONE, status_detail="", next_attempt_at=timezone.now(), dispatched_at=None
    )


@transaction.atomic
def messages_release_cap_holds(*, tenant_id: int) -> int:
    """The team's caps changed: the mail they held is looked at again now (held again, with a
    new time, if still over a cap). Returns how many."""
    held = Message.objects.filter(
        tenant_id=tenant_id, status=MessageStatus.QUEUED, hold=Hold.DOMAIN_CAP
    )
    return held.update(next_attempt_at=timezone.now(), dispatched_at=None)

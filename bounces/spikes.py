"""Bounce-spike protection.

After each batch of bounces is recorded, in the same transaction, every channel that batch
touched is measured: of the mail it sent in the last hour (or since an admin last resumed it),
how much has bounced. Past the tenant's threshold, with enough mail to judge by, the channel is
paused (its queue is held, nothing is lost), a ``BounceSpike`` records the figures, and the
tenant's admins and the channel's owner are told in the live feed and by email. An admin then
resumes the channel, keeping the bounces or undoing the whole wave when it was a false one (an
auto-responder storm, a misread mailbox).

Each receiving provider (Google, Microsoft, Yahoo: ``channels.providers``) is watched the same
way across all of the tenant's channels (``check_providers``): a wave of bounces from one
provider pauses sending to that provider's mailboxes only (``sending.domainlimits``), and mail
to the others keeps going. The spike records the provider instead of a channel, and is resolved
with the same two choices.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop, ngettext_lazy

from accounts.models import Membership, User
from analytics import feed
from analytics.models import DomainRollup, FeedKind
from channels import providers
from channels import services as channel_services
from channels.models import Channel, ChannelStatus, TeamSendingSettings
from msc_admin.stored import When, sentence
from sending import domainlimits
from sending import services as sending_services
from sending.models import Hold, Message, MessageStatus

from .models import BounceEvent, BounceSpike

WINDOW = timedelta(hours=1)


def check(tenant_id: int, channel_ids: Iterable[int], now: datetime | None = None) -> list[int]:
    """Pause each of these channels whose recent mail bounced past the threshold; returns the
    new spikes' ids. Runs inside the transaction that recorded the bounces."""
    wanted = sorted(set(channel_ids))
    if not wanted:
        return []
    rules = TeamSendingSettings.of_tenant(tenant_id)
    if not rules.spike_protection:
        return []
    now = now or timezone.now()
    found = []
    active = Channel.objects.filter(tenant_id=tenant_id, status=ChannelStatus.ACTIVE)
    for channel in active.filter(pk__in=wanted).order_by("pk"):
        resumed = channel.bounce_spikes.aggregate(last=Max("resolved_at"))["last"]
        since = max(now - WINDOW, resumed) if resumed else now - WINDOW
        figures = Message.objects.filter(channel=channel, sent_at__gte=since).aggregate(
            sent=Count("pk"), bounced=Count("pk", filter=Q(status=MessageStatus.BOUNCED))
        )
        sent, bounced = figures["sent"], figures["bounced"]
        if sent < rules.spike_min_sent or bounced * 100 <= rules.spike_threshold_pct * sent:
            continue
        # Locked only now, and re-read under the lock: a second batch racing this one finds
        # the channel already paused and leaves it be.
        locked = active.select_for_update().filter(pk=channel.pk).first()
        if locked is not None:
            found.append(_pause(locked, since, now, sent, bounced, rules.spike_threshold_pct))
    return found


def _pause(
    channel: Channel, since: datetime, now: datetime, sent: int, bounced: int, threshold: int
) -> int:
    spike = BounceSpike.objects.create(
        tenant_id=channel.tenant_id,
        channel=channel,
        detected_at=now,
        window_start=since,
        sent=sent,
        bounced=bounced,
        threshold_pct=threshold,
    )
    # Stored as a sentence (``msc_admin.stored``): the team reads it, each in their language.
    # No plural forms: a sentence and both its forms would not fit the columns it goes in.
    text = sentence(
        gettext_noop(
            "Paused automatically: %(bounced)s of %(sent)s sent since %(since)s bounced "
            "(%(rate)s %%), above the team's limit of %(threshold)s %%. An admin can review the "
            "bounces and resume it."
        ),
        bounced=bounced,
        sent=sent,
        since=When(since),
        rate=round(100 * spike.rate),
        threshold=threshold,
    )
    detail = sentence(
        gettext_noop("Waiting for %(channel)s: %(why)s"), channel=channel.label, why=text
    )
    held = sending_services.messages_hold_for_channel(
        channel=channel, hold=Hold.SPIKE, until=None, detail=detail
    )
    channel_services.channel_pause(
        channel=channel,
        message=text,
        why="bounce spike",
        changes={"sent": sent, "bounced": bounced, "threshold_pct": threshold, "held": held},
    )
    link = reverse("bounces:spike", args=[spike.pk])
    _tell(
        channel,
        lambda: sentence(
            gettext_noop("%(channel)s paused: %(bounced)s of %(sent)s recent messages bounced."),
            channel=channel.label,
            bounced=bounced,
            sent=sent,
        ),
        link,
    )
    return spike.pk


def check_providers(
    tenant_id: int, domains: Iterable[str], now: datetime | None = None
) -> list[int]:
    """Pause sending to each receiving provider of these (just bounced) domains whose mail from
    the whole tenant bounced past the threshold in the window; returns the new spikes' ids. Runs
    inside the transaction that recorded the bounces."""
    # The providers first: a batch that bounced from none of the watched ones (a company's own
    # mail servers) has nothing to measure, and skips reading the team's settings (an ORM
    # query, about a millisecond of CPU a batch).
    found = sorted(set(providers.providers_of(domains).values()) & set(providers.GROUPS))
    if not found:
        return []
    rules = TeamSendingSettings.of_tenant(tenant_id)
    if not rules.spike_protection:
        return []
    paused = set(rules.paused_providers)
    now = now or timezone.now()
    spikes = []
    for provider in found:
        if provider in paused:
            continue
        resumed = BounceSpike.objects.filter(tenant_id=tenant_id, provider=provider).aggregate(
            last=Max("resolved_at")
        )["last"]
        since = max(now - WINDOW, resumed) if resumed else now - WINDOW
        figures = (
            Message.objects.filter(
                tenant_id=tenant_id, to_domain__in=_recent_domains(tenant_id, provider, since)
            )
            .filter(sent_at__gte=since)
            .aggregate(
                sent=Count("pk"), bounced=Count("pk", filter=Q(status=MessageStatus.BOUNCED))
            )
        )
        sent, bounced = figures["sent"], figures["bounced"]
        if sent < rules.spike_min_sent or bounced * 100 <= rules.spike_threshold_pct * sent:
            continue
        threshold = rules.spike_threshold_pct
        spikes.append(_pause_provider(tenant_id, provider, since, now, sent, bounced, threshold))
    return spikes


def _recent_domains(tenant_id: int, provider: str, since: datetime) -> list[str]:
    """The provider's domains the tenant has mailed since then, read from the day's roll-ups
    by domain: the messages are then counted by their (tenant, domain, sent) index, a few
    ranges, not the tenant's whole mail."""
    days = DomainRollup.objects.filter(tenant_id=tenant_id, day__gte=timezone.localdate(since))
    domains = days.values_list("domain", flat=True).distinct().order_by()
    return sorted(d for d, p in providers.providers_of(domains).items() if p == provider)


def _pause_provider(
    tenant_id: int,
    provider: str,
    since: datetime,
    now: datetime,
    sent: int,
    bounced: int,
    threshold: int,
) -> int:
    spike = BounceSpike.objects.create(
        tenant_id=tenant_id,
        provider=provider,
        detected_at=now,
        window_start=since,
        sent=sent,
        bounced=bounced,
        threshold_pct=threshold,
    )
    name = providers.NAMES[provider]
    why = sentence(
        gettext_noop(
            "%(bounced)s of %(sent)s sent to them since %(since)s bounced (%(rate)s %%), above "
            "the team's limit of %(threshold)s %%"
        ),
        bounced=bounced,
        sent=sent,
        since=When(since),
        rate=round(100 * spike.rate),
        threshold=threshold,
    )
    held = domainlimits.provider_pause(tenant_id=tenant_id, provider=provider, why=why)
    channel_services.audit(
        tenant=spike.tenant,
        actor=None,
        subject=sentence(gettext_noop("Sending to %(provider)s mailboxes"), provider=name),
        action="paused: bounce spike",
        changes={"sent": sent, "bounced": bounced, "threshold_pct": threshold, "held": held},
    )
    link = reverse("bounces:spike", args=[spike.pk])
    _tell_admins(
        tenant_id,
        lambda: sentence(
            gettext_noop(
                "Sending to %(provider)s mailboxes paused: %(bounced)s of %(sent)s recent messages "
                "to them bounced. Mail to other providers keeps going."
            ),
            provider=name,
            bounced=bounced,
            sent=sent,
        ),
        link,
    )
    return spike.pk


def _tell_admins(tenant_id: int, words: Callable[[], str], link: str) -> None:
    """The tenant's admins: a feed entry now, an email after commit, each in their language.
    ``words()`` is a sentence (``msc_admin.stored``): the entry is read in the reader's
    language of the day, not the one they had when it was written."""
    admins = [
        m.user
        for m in Membership.objects.filter(tenant_id=tenant_id)
        .admins()
        .active()
        .select_related("user")
    ]
    _email(feed.notify_each(tenant_id, FeedKind.CHANNEL, admins, words, link), words, link)


def _tell(channel: Channel, words: Callable[[], str], link: str) -> None:
    """The tenant's admins and the channel's owner: a feed entry now, an email after commit,
    each in their language."""
    people = feed.channel_users(channel, admins=True)
    _email(feed.notify_each(channel.tenant_id, FeedKind.CHANNEL, people, words, link), words, link)


def _email(emails: dict[str, list[str]], words: Callable[[], str], link: str) -> None:
    """One email per language, to the people who read that one (``feed.notify_each``)."""

    def send() -> None:
        url = f"{settings.MSC_BASE_URL.rstrip('/')}{link}"
        for language, recipients in sorted(emails.items()):
            with translation.override(language):
                text = words()
                review = gettext("Review it at %(url)s") % {"url": url}
            body = f"{text}\n\n{review}\n"
            send_mail(subject=text[:120], message=body, from_email=None, recipient_list=recipients)

    if emails:
        transaction.on_commit(send)


def wave(spike: BounceSpike) -> QuerySet[BounceEvent]:
    """The bounces of the spike: counting bounces of the channel's (or of the tenant's mail to
    the provider's) mail sent in its window, including those that arrived while it was paused."""
    events = BounceEvent.objects.filter(
        tenant_id=spike.tenant_id,
        message__sent_at__gte=spike.window_start,
        undone_at__isnull=True,
    )
    if spike.provider:
        return events.filter(providers.provider_q(spike.provider, "message__to_domain"))
    return events.filter(message__channel=spike.channel)


@transaction.atomic
def resolve(*, spike: BounceSpike, by: User, undo_wave: bool) -> int:
    """Resume the channel; with ``undo_wave``, first mark every bounce of the wave "not a
    bounce" (figures, messages and campaigns restored). Returns how many were undone."""
    from .services import undo

    spike = BounceSpike.objects.select_for_update().get(pk=spike.pk)
    if not spike.is_open:
        raise ValidationError(gettext("This spike has already been dealt with."))
    undone = 0
    if undo_wave:
        for event in wave(spike).order_by("pk"):
            undo(event=event, by=by)
            undone += 1
    now = timezone.now()
    spike.resolved_at, spike.resolved_by, spike.undone = now, by, undone
    spike.outcome = BounceSpike.Outcome.UNDONE if undo_wave else BounceSpike.Outcome.RESUMED
    spike.save(update_fields=["resolved_at", "resolved_by", "undone", "outcome"])

    def what() -> str:
        if not undo_wave:
            return ""
        return sentence(
            ngettext_lazy(
                ", %(n)s bounce marked “not a bounce”", ", %(n)s bounces marked “not a bounce”", "n"
            ),
            n=undone,
        )

    channel = spike.channel
    if channel is None:  # a provider's spike
        domainlimits.provider_resume(tenant_id=spike.tenant_id, provider=spike.provider)
        channel_services.audit(
            tenant=spike.tenant,
            actor=by,
            subject=sentence(
                gettext_noop("Sending to %(provider)s mailboxes"),
                provider=providers.NAMES[spike.provider],
            ),
            action="resumed after a bounce spike",
            changes={"bounces_undone": undone},
        )
        _tell_admins(
            spike.tenant_id,
            lambda: sentence(
                gettext_noop("%(subject)s resumed by %(who)s%(what)s."),
                subject=spike.subject,
                who=by.email,
                what=what(),
            ),
            reverse("bounces:spikes"),
        )
        return undone
    channel_services.channel_resume(
        channel=channel, actor=by, why="bounce spike", changes={"bounces_undone": undone}
    )
    _tell(
        channel,
        lambda: sentence(
            gettext_noop("%(subject)s resumed by %(who)s%(what)s."),
            subject=channel.label,
            who=by.email,
            what=what(),
        ),
        reverse("bounces:spikes"),
    )
    return undone

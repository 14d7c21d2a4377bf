"""Bounce-spike protection.

After each batch of bounces is recorded, in the same transaction, every channel that batch
touched is measured: of the mail it sent in the last hour (or since an admin last resumed it),
how much has bounced. Past the tenant's threshold, with enough mail to judge by, the channel is
paused (its queue is held, nothing is lost), a ``BounceSpike`` records the figures, and the
tenant's admins and the channel's owner are told in the live feed and by email. An admin then
resumes the channel, keeping the bounces or undoing the whole wave when it was a false one (an
auto-responder storm, a misread mailbox).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from analytics import feed
from channels import services as channel_services
from channels.models import Channel, ChannelStatus, TeamSendingSettings
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
    text = (
        f"Paused automatically: {bounced} of the {sent} message{pluralize(sent)} it sent since "
        f"{timezone.localtime(since):%H:%M} bounced ({100 * spike.rate:.0f} %), above the "
        f"team's limit of {threshold} %. An admin can review the bounces and resume it."
    )
    held = sending_services.messages_hold_for_channel(
        channel=channel, hold=Hold.SPIKE, until=None, detail=f"Waiting for {channel.label}: {text}"
    )
    channel_services.channel_pause(
        channel=channel,
        message=text,
        why="bounce spike",
        changes={"sent": sent, "bounced": bounced, "threshold_pct": threshold, "held": held},
    )
    link = reverse("bounces:spike", args=[spike.pk])
    _tell(channel, f"{channel.label} paused: {bounced} of {sent} recent messages bounced.", link)
    return spike.pk


def _tell(channel: Channel, text: str, link: str) -> None:
    """The tenant's admins and the channel's owner: a feed entry now, an email after commit."""
    emails = feed.notify_channel(channel, text, link, admins=True)

    def send() -> None:
        body = f"{text}\n\nReview it at {settings.MSC_BASE_URL.rstrip('/')}{link}\n"
        send_mail(subject=text[:120], message=body, from_email=None, recipient_list=emails)

    if emails:
        transaction.on_commit(send)


def wave(spike: BounceSpike) -> QuerySet[BounceEvent]:
    """The bounces of the spike: counting bounces of the channel's mail sent in its window,
    including those that arrived while it was paused."""
    return BounceEvent.objects.filter(
        tenant_id=spike.tenant_id,
        message__channel_id=spike.channel_id,
        message__sent_at__gte=spike.window_start,
        undone_at__isnull=True,
    )


@transaction.atomic
def resolve(*, spike: BounceSpike, by: User, undo_wave: bool) -> int:
    """Resume the channel; with ``undo_wave``, first mark every bounce of the wave "not a
    bounce" (figures, messages and campaigns restored). Returns how many were undone."""
    from .services import undo

    spike = BounceSpike.objects.select_for_update().get(pk=spike.pk)
    if not spike.is_open:
        raise ValidationError("This spike has already been dealt with.")
    undone = 0
    if undo_wave:
        for event in wave(spike).order_by("pk"):
            undo(event=event, by=by)
            undone += 1
    now = timezone.now()
    spike.resolved_at, spike.resolved_by, spike.undone = now, by, undone
    spike.outcome = BounceSpike.Outcome.UNDONE if undo_wave else BounceSpike.Outcome.RESUMED
    spike.save(update_fields=["resolved_at", "resolved_by", "undone", "outcome"])
    channel = spike.channel
    channel_services.channel_resume(
        channel=channel, actor=by, why="bounce spike", changes={"bounces_undone": undone}
    )
    what = f", {undone} bounce{pluralize(undone)} marked “not a bounce”" if undo_wave else ""
    _tell(channel, f"{channel.label} resumed by {by.email}{what}.", reverse("bounces:spikes"))
    return undone

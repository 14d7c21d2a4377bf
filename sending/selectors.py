"""Read models for the Outbox: folder counts, expected send times, per-connection headroom."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, Q, QuerySet
from django.db.models.expressions import Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, pgettext_lazy

from accounts.models import User
from channels.models import Channel, ChannelStatus, Identity, TeamSendingSettings
from channels.routing import Route, Source, route
from sending import quota
from sending.models import Hold, Message, MessageStatus

FOLDERS = {
    "scheduled": (pgettext_lazy("outbox folder", "Scheduled"), [MessageStatus.SCHEDULED]),
    "queued": (
        pgettext_lazy("outbox folder", "Queued"),
        [MessageStatus.QUEUED, MessageStatus.SENDING],
    ),
    "sent": (pgettext_lazy("outbox folder", "Sent"), [MessageStatus.SENT]),
    "failed": (pgettext_lazy("outbox folder", "Failed"), [MessageStatus.FAILED]),
    "bounced": (pgettext_lazy("outbox folder", "Bounced"), [MessageStatus.BOUNCED]),
    "cancelled": (pgettext_lazy("outbox folder", "Cancelled"), [MessageStatus.CANCELLED]),
    "suppressed": (pgettext_lazy("outbox folder", "Suppressed"), [MessageStatus.SUPPRESSED]),
}
# What an empty folder says: (no email at all, none matching the filters). Whole sentences,
# so that each language words its own folder names.
EMPTY_FOLDER = {
    "scheduled": (
        gettext_lazy("No scheduled emails."),
        gettext_lazy("No scheduled emails match these filters."),
    ),
    "queued": (
        gettext_lazy("No queued emails."),
        gettext_lazy("No queued emails match these filters."),
    ),
    "sent": (gettext_lazy("No sent emails."), gettext_lazy("No sent emails match these filters.")),
    "failed": (
        gettext_lazy("No failed emails."),
        gettext_lazy("No failed emails match these filters."),
    ),
    "bounced": (
        gettext_lazy("No bounced emails."),
        gettext_lazy("No bounced emails match these filters."),
    ),
    "cancelled": (
        gettext_lazy("No cancelled emails."),
        gettext_lazy("No cancelled emails match these filters."),
    ),
    "suppressed": (
        gettext_lazy("No suppressed emails."),
        gettext_lazy("No suppressed emails match these filters."),
    ),
}


def folder_of(message: Message) -> str:
    """The Outbox folder a message is listed in now ("queued" for one in none, a draft)."""
    found = (name for name, (_, statuses) in FOLDERS.items() if message.status in statuses)
    return next(found, "queued")


def folder_counts(messages: QuerySet[Message]) -> dict[str, int]:
    counts = messages.aggregate(
        **{
            name: Count("pk", filter=Q(status__in=statuses))
            for name, (_, statuses) in FOLDERS.items()
        }
    )
    return {name: counts[name] for name in FOLDERS}


def expected_send_times(page: list[Message], team: TeamSendingSettings | None) -> None:
    """Set ``message.eta`` on queued messages: a queue throttled by the team drains one batch per
    window, so the k-th message of a channel's queue goes ``k // batch`` windows after the next
    one (the team's throttling applies to Email Connection channels only)."""
    channel_ids: set[int] = {
        m.channel.pk
        for m in page
        if m.hold == Hold.THROTTLE and m.channel and m.channel.kind_spec.email_connection
    }
    ranks: dict[int, int] = {}
    if channel_ids:
        ranks = dict(
            Message.objects.filter(channel_id__in=channel_ids, status=MessageStatus.QUEUED)
            .annotate(
                rank=Window(
                    RowNumber(),
                    partition_by=[F("channel_id")],
                    order_by=[F("next_attempt_at").asc(nulls_last=True), F("pk").asc()],
                )
            )
            .values_list("pk", "rank")
        )
    now = timezone.now()
    for message in page:
        eta: datetime | None = None
        if message.status == MessageStatus.QUEUED:
            eta = message.next_attempt_at
            batched = message.channel_id in channel_ids
            if batched and eta and team and team.throttling_enabled:
                batches = (ranks.get(message.pk, 1) - 1) // max(team.batch_size, 1)
                eta = eta + timedelta(seconds=batches * team.wait_seconds)
            if eta is not None and eta < now:
                eta = now
        elif message.status == MessageStatus.SCHEDULED:
            eta = message.scheduled_at
        message.eta = eta  # type: ignore[attr-defined]


@dataclass
class ConnectionUsage:
    channel: Channel
    throttled: bool
    usages: list[quota.Usage]
    sent_24h: int  # by the user, in the last 24 hours: the window the rolling limits count
    queued: int


_UNREAD: Any = object()  # "the caller has not read the team's settings"


def connection_usage(
    user: User, team: TeamSendingSettings | None = _UNREAD
) -> list[ConnectionUsage]:
    """The usage and headroom of every channel the user sends through (a retired one sends
    nothing), and what the user sent through each in the last 24 hours. ``team``: the tenant's
    sending settings (None: it has none), when the caller has read them already."""
    tenant_id = user.membership.tenant_id
    channels = list(
        Channel.objects.filter(tenant_id=tenant_id)
        .filter(Q(owner=user) | Q(owner__isnull=True))
        .exclude(status=ChannelStatus.DISABLED)
        .order_by("owner_id", "created_at")
    )
    if team is _UNREAD:
        team = TeamSendingSettings.objects.filter(tenant_id=tenant_id).first()
    since = timezone.now() - timedelta(hours=24)
    counts = {
        row["channel_id"]: row
        for row in Message.objects.filter(channel__in=channels, sender=user)
        .values("channel_id")
        .annotate(
            # Handed over in the last 24 hours, whatever became of it since (a later bounce
            # included).
            sent_24h=Count("pk", filter=Q(sent_at__gt=since)),
            queued=Count("pk", filter=Q(status=MessageStatus.QUEUED)),
        )
    }
    result = []
    for channel in channels:
        rules = quota.rules_for(channel, team)
        row = counts.get(channel.pk, {})
        result.append(
            ConnectionUsage(
                channel=channel,
                throttled=bool(rules),
                usages=quota.usage(channel, rules),
                sent_24h=row.get("sent_24h", 0),
                queued=row.get("queued", 0),
            )
        )
    return result


@dataclass
class HeldForChannel:
    """The user's mail held because its channel was retired, and where it would go now."""

    count: int
    routes: dict[tuple[int | None, str], Route]

    @property
    def through(self) -> list[Channel]:
        """The working channels it would go out through if sent now, each once."""
        found: dict[int, Channel] = {}
        for where in self.routes.values():
            if where.can_send and where.channel is not None:
                found.setdefault(where.channel.pk, where.channel)
        return list(found.values())

    @property
    def problem(self) -> str:
        """Why some of it cannot go yet, and what to do ("" when all of it can)."""
        return next((where.problem for where in self.routes.values() if where.problem), "")

    @property
    def through_labels(self) -> str:
        labels = [channel.label for channel in self.through]
        if len(labels) < 2:
            return "".join(labels)
        return gettext("%(some)s and %(last)s") % {
            "some": ", ".join(labels[:-1]),
            "last": labels[-1],
        }

    def route_of(self, message: Message) -> Route | None:
        return self.routes.get((message.identity_id, message.source))


def held_for_channel(user: User) -> HeldForChannel:
    """The user's own mail waiting for a channel, routed as it would be now (one route per
    identity and source, whatever the number of messages)."""
    held = Message.objects.filter(sender=user, status=MessageStatus.QUEUED, hold=Hold.CHANNEL)
    keys = list(held.values_list("identity_id", "source").annotate(n=Count("pk")).order_by())
    identities = Identity.objects.select_related("channel").in_bulk(
        [identity for identity, _, _ in keys if identity is not None]
    )
    routes = {
        (identity_id, source): route(
            user=user,
            identity=identities.get(identity_id) if identity_id else None,
            source=source,
        )
        for identity_id, source, _ in keys
    }
    return HeldForChannel(count=sum(n for _, _, n in keys), routes=routes)


def label_rows(page: list[Message], held: HeldForChannel) -> None:
    """Set what an Outbox row shows in words (the reader's language): ``status_label``,
    ``source_label``, ``channel_label``, and ``reroute`` (where mail held for a channel would go
    now). Each label is worked out once per page and value, not per row: Django's
    ``get_FOO_display`` hashes every choice on each call, and a page's 50 rows share a few
    statuses and channels (together about a third of the Sent folder's CPU under the crowd)."""
    statuses = {value: str(label) for value, label in MessageStatus.choices}
    sources = {value: str(label) for value, label in Source.choices}
    channels: dict[int, str] = {}
    for message in page:
        message.reroute = held.route_of(message)  # type: ignore[attr-defined]
        message.status_label = statuses.get(message.status, message.status)  # type: ignore[attr-defined]
        message.source_label = sources.get(message.source, message.source)  # type: ignore[attr-defined]
        label = ""
        if message.channel is not None and message.channel_id is not None:
            if message.channel_id not in channels:
                channels[message.channel_id] = message.channel.label
            label = channels[message.channel_id]
        message.channel_label = label  # type: ignore[attr-defined]

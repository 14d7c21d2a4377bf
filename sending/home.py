"""What sending adds to the home page (``accounts.home``): today's sends against the limits
that apply (admins), the rep's own queue with its holds and when it goes, and the attention
line for suppressions added today.

Query budget, whatever the number of channels and messages: the admin's tile is seven queries
(today's roll-up, the channels, the team's throttling, the rolling windows' slots and the
counters of every channel at once, the receiving-domain caps and their slots), the rep's one
(the ``outbox`` index: tenant, sender, status), the attention line one (``suppression_recent``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Min, Q, Sum
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from accounts.home import Attention, Tile, by_role
from accounts.home import member as membership_of
from analytics.models import TeamRollup
from channels.kinds import Rule
from channels.models import Channel, ChannelStatus, DomainCap, TeamSendingSettings
from sending import quota
from sending.models import (
    DomainCapSlot,
    Hold,
    Message,
    MessageStatus,
    QuotaSlot,
    QuotaWindow,
    Suppression,
)

LISTED = 5  # limits listed, the fullest first
DAILY_ENOUGH = 3600  # limits of an hour or more say something about a day's sending


@dataclass
class LimitLine:
    key: str  # "channel-<pk>-<rule>" or "cap-<pk>"
    label: str  # "Gmail limit: 2,000 messages in 24 hours"
    whose: str  # the channel's label, or "" for a receiving-domain cap
    used: int
    limit: int
    link: str

    @property
    def pct(self) -> int:
        return min(100, round(100 * self.used / self.limit)) if self.limit else 0


def _rolling_used(
    table: Any, key: str, ids: list[int], spans: set[int], now: float
) -> dict[int, dict[int, int]]:
    """{id: {seconds: slots in the last ``seconds``}} for every id, in one query."""
    if not ids or not spans:
        return {}
    rows = (
        table.objects.filter(**{f"{key}__in": ids}, at__gt=now - max(spans))
        .values(key, *(["rule"] if table is QuotaSlot else []))
        .annotate(**{f"s{s}": Count("pk", filter=Q(at__gt=now - s)) for s in spans})
        .order_by()
    )
    found: dict[Any, dict[int, int]] = {}
    for row in rows:
        which = (row[key], row["rule"]) if table is QuotaSlot else row[key]
        found[which] = {s: row[f"s{s}"] for s in spans}
    return found


def _channel_limits(request: HttpRequest, now: float) -> list[LimitLine]:
    tenant = request.tenant  # type: ignore[attr-defined]
    channels = list(
        Channel.objects.for_tenant(tenant)
        .exclude(status=ChannelStatus.DISABLED)
        .select_related("owner")
    )
    team = TeamSendingSettings.objects.filter(tenant=tenant).first()
    rules: list[tuple[Channel, Rule]] = [
        (channel, rule)
        for channel in channels
        for rule in quota.rules_for(channel, team)
        if rule.seconds >= DAILY_ENOUGH
    ]
    rolling = [(c, r) for c, r in rules if r.rolling]
    slots = _rolling_used(
        QuotaSlot, "channel_id", [c.pk for c, _ in rolling], {r.seconds for _, r in rolling}, now
    )
    counters = {
        (row["channel_id"], row["rule"]): row
        for row in QuotaWindow.objects.filter(
            channel_id__in=[c.pk for c, r in rules if not r.rolling]
        ).values("channel_id", "rule", "window_start", "used")
    }
    lines = []
    for channel, rule in rules:
        if rule.rolling:
            used = slots.get((channel.pk, rule.name), {}).get(rule.seconds, 0)  # type: ignore[call-overload]
        else:
            row = counters.get((channel.pk, rule.name))
            used = row["used"] if row and row["window_start"] + rule.seconds > now else 0
        link = f"{reverse('sending:outbox_folder', args=['sent'])}?scope=team&channel={channel.pk}"
        key = f"channel-{channel.pk}-{rule.name}"
        lines.append(LimitLine(key, rule.label, channel.label, used, rule.limit, link))
    return lines


def _cap_limits(request: HttpRequest, now: float) -> list[LimitLine]:
    caps = list(DomainCap.objects.for_tenant(request.tenant))  # type: ignore[attr-defined]
    used = _rolling_used(
        DomainCapSlot, "cap_id", [c.pk for c in caps], {c.seconds for c in caps}, now
    )
    link = f"{reverse('channels:team')}#domain-limits"
    return [
        LimitLine(
            f"cap-{cap.pk}",
            cap.label,
            "",
            used.get(cap.pk, {}).get(cap.seconds, 0),
            cap.limit,
            link,
        )
        for cap in caps
    ]


def admin_tile(request: HttpRequest) -> Tile:
    today = timezone.localdate()
    sent = (
        TeamRollup.objects.filter(tenant=request.tenant, day=today).aggregate(n=Sum("sent"))["n"]  # type: ignore[attr-defined]
        or 0
    )
    now = time.time()
    limits = _channel_limits(request, now) + _cap_limits(request, now)
    limits.sort(key=lambda line: (-line.used / line.limit if line.limit else 0, line.whose))
    return Tile(
        "sending/_home_today.html",
        {
            "sent": sent,
            "limits": limits[:LISTED],
            "more": max(len(limits) - LISTED, 0),
            "today": today,
        },
        order=20,
    )


@dataclass
class HoldLine:
    hold: str
    words: str
    count: int
    eta: datetime | None


def rep_tile(request: HttpRequest) -> Tile:
    """The rep's queued and scheduled mail by hold, each with when its first message goes."""
    rows = (
        Message.objects.for_tenant(request.tenant)  # type: ignore[attr-defined]
        .filter(
            sender=request.user,
            status__in=[MessageStatus.QUEUED, MessageStatus.SCHEDULED, MessageStatus.SENDING],
        )
        .values("status", "hold")
        .annotate(n=Count("pk"), next=Min("next_attempt_at"), scheduled=Min("scheduled_at"))
        .order_by()
    )
    names = dict(Hold.choices)
    now = timezone.now()
    queued, scheduled, holds = 0, 0, []
    first_scheduled: datetime | None = None
    for row in rows:
        if row["status"] == MessageStatus.SCHEDULED:
            scheduled += row["n"]
            first_scheduled = min(filter(None, [first_scheduled, row["scheduled"]]), default=None)
            continue
        queued += row["n"]
        eta = row["next"]
        if eta is not None and eta < now:
            eta = now
        hold = row["hold"] if row["status"] == MessageStatus.QUEUED else ""
        holds.append(
            HoldLine(
                hold, str(names.get(hold, hold)) if hold else gettext("Going out"), row["n"], eta
            )
        )
    holds.sort(key=lambda line: (line.hold != "", line.eta or now + timedelta(days=3650)))
    merged: dict[str, HoldLine] = {}
    for line in holds:
        if line.hold in merged:
            merged[line.hold].count += line.count
        else:
            merged[line.hold] = line
    return Tile(
        "sending/_home_queue.html",
        {
            "queued": queued,
            "scheduled": scheduled,
            "first_scheduled": first_scheduled,
            "holds": list(merged.values()),
        },
        order=20,
    )


def home_tiles(request: HttpRequest) -> list[Tile]:
    return by_role(request, admin=admin_tile, rep=rep_tile)


def home_attention(request: HttpRequest) -> list[Attention]:
    member = membership_of(request)
    if not (member and member.is_admin):
        return []
    start = timezone.make_aware(
        datetime.combine(timezone.localdate(), datetime.min.time()),
        timezone.get_current_timezone(),
    )
    n = (
        Suppression.objects.for_tenant(request.tenant)  # type: ignore[attr-defined]
        .filter(created_at__gte=start)
        .count()
    )
    return [
        Attention(
            "suppressions-today",
            n,
            ngettext(
                "%(n)s address added to Suppressions today: mail to it will not go out",
                "%(n)s addresses added to Suppressions today: mail to them will not go out",
                n,
            )
            % {"n": n},
            reverse("sending:suppressions"),
        )
    ]

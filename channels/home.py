"""What Delivery channels adds to the home page (``accounts.home``): each channel's health
for admins, "your channel" for reps, and the channel lines of the attention list.

Query budget (whatever the number of channels): the admin's tile is three queries (the counts
by state, the worst few channels with their domain-check state, the domain checks' counts), the
rep's one, the attention lines two (the same counts, kept on the request, and the unverified
identities)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Case, Count, Exists, IntegerField, OuterRef, Q, Value, When
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from accounts.home import Attention, Tile, by_role
from accounts.home import member as membership_of
from channels.domaincheck.selectors import looked_after
from channels.models import (
    Channel,
    ChannelStatus,
    DomainCheckState,
    Identity,
    SendingDomainCheck,
)
from msc_admin.humanize import ago
from msc_admin.stored import read

LISTED = 5  # channels listed on the admin's tile, the team channel and the worst first


def _live(request: HttpRequest) -> Any:
    return Channel.objects.for_tenant(request.tenant).exclude(  # type: ignore[attr-defined]
        status=ChannelStatus.DISABLED
    )


@dataclass
class ChannelLine:
    channel: Channel
    state: str  # "ok", "warn" or "bad": the badge's colour (its words say the same)
    words: str
    detail: str
    link: str
    domain_problem: bool = False


def channel_line(channel: Channel, *, now: datetime, admin_link: bool) -> ChannelLine:
    """A channel's health in words: connected, needs attention, paused, backed off (with when
    it resumes), last test failed."""
    if channel.is_team and admin_link:
        link = reverse("channels:team")  # Team settings: admins only
    elif admin_link:
        link = f"{reverse('sending:outbox')}?scope=team&channel={channel.pk}"
    else:
        link = reverse("channels:overview")
    if channel.status == ChannelStatus.PAUSED:
        state, words, detail = "bad", _("Paused: bounce spike"), channel.status_text
        if admin_link:
            link = reverse("bounces:spikes")  # where an admin resumes it
    elif channel.status == ChannelStatus.NEEDS_ATTENTION:
        state, words, detail = "bad", _("Needs attention"), channel.status_text
    elif channel.backoff_until and channel.backoff_until > now:
        when = date_format(timezone.localtime(channel.backoff_until), "DATETIME_FORMAT")
        state, words = "warn", _("Backed off until %(when)s") % {"when": when}
        detail = channel.backoff_text
    elif channel.last_test_ok is False:
        state, words, detail = "warn", _("Last test failed"), read(channel.last_test_message)
    else:
        state, words, detail = "ok", _("Connected"), ""
    return ChannelLine(channel, state, words, detail, link)


def _tested(channel: Channel) -> str:
    if channel.last_test_at is None:
        return _("never tested")
    when = ago(channel.last_test_at)
    if channel.last_test_ok:
        return _("last test %(when)s: passed") % {"when": when}
    return _("last test %(when)s: failed") % {"when": when}


def _token(channel: Channel, now: datetime) -> str:
    if not channel.is_oauth or channel.token_expires_at is None:
        return ""
    when = date_format(timezone.localtime(channel.token_expires_at), "DATETIME_FORMAT")
    if channel.token_expires_at <= now:
        return _("sign-in token expired %(when)s (renewed at the next send)") % {"when": when}
    return _("sign-in token valid until %(when)s") % {"when": when}


_STATE_COUNTS = {
    "paused": Q(status=ChannelStatus.PAUSED),
    # A channel whose last connection test failed needs a look too, though it may still send.
    "attention": Q(status=ChannelStatus.NEEDS_ATTENTION)
    | Q(status=ChannelStatus.ACTIVE, last_test_ok=False),
}


def state_counts(request: HttpRequest) -> dict[str, int]:
    """The tenant's live channels by state (one query, kept on the request for the tile and
    the attention list)."""
    cached = getattr(request, "_home_channel_counts", None)
    if cached is not None:
        return cached
    now = timezone.now()
    counts: dict[str, int] = _live(request).aggregate(
        total=Count("pk"),
        backed_off=Count("pk", filter=Q(status=ChannelStatus.ACTIVE, backoff_until__gt=now)),
        connected=Count(
            "pk",
            filter=Q(status=ChannelStatus.ACTIVE)
            & ~Q(backoff_until__gt=now)
            & ~Q(last_test_ok=False),
        ),
        **{name: Count("pk", filter=q) for name, q in _STATE_COUNTS.items()},
    )
    request._home_channel_counts = counts  # type: ignore[attr-defined]
    return counts


def _worst(request: HttpRequest) -> list[Channel]:
    failing = SendingDomainCheck.objects.filter(
        channel=OuterRef("pk"), state__in=[DomainCheckState.FAIL, DomainCheckState.WARN]
    )
    rank = Case(
        When(owner__isnull=True, then=Value(0)),
        When(status=ChannelStatus.PAUSED, then=Value(1)),
        When(status=ChannelStatus.NEEDS_ATTENTION, then=Value(2)),
        When(backoff_until__gt=timezone.now(), then=Value(3)),
        When(last_test_ok=False, then=Value(4)),
        default=Value(5),
        output_field=IntegerField(),
    )
    return list(
        _live(request)
        .select_related("owner")
        .annotate(rank=rank, domain_problem=Exists(failing))
        .order_by("rank", "-domain_problem", "owner__email", "kind")[:LISTED]
    )


def admin_tile(request: HttpRequest) -> Tile:
    now = timezone.now()
    lines = []
    for channel in _worst(request):
        line = channel_line(channel, now=now, admin_link=True)
        line.domain_problem = bool(channel.domain_problem)  # type: ignore[attr-defined]
        extra = [_tested(channel), _token(channel, now)]
        line.detail = " · ".join(part for part in [line.detail, *extra] if part)
        lines.append(line)
    # The same checks as the domain warnings above the tiles (``looked_after``), so they agree.
    checks = looked_after(tenant=request.tenant, user=request.user)  # type: ignore[attr-defined, arg-type]
    domains = checks.aggregate(
        **{state.value: Count("pk", filter=Q(state=state)) for state in DomainCheckState},
    )
    counts = state_counts(request)
    return Tile(
        "channels/_home_health.html",
        {
            "counts": counts,
            "lines": lines,
            "more": max(counts["total"] - len(lines), 0),
            "domains": domains,
        },
        order=10,
    )


def rep_tile(request: HttpRequest) -> Tile:
    """The channels the rep's mail goes through: their own, then the team's."""
    now = timezone.now()
    channels = (
        _live(request)
        .filter(Q(owner=request.user) | Q(owner__isnull=True))
        .order_by("owner_id", "kind")
    )
    lines = [channel_line(channel, now=now, admin_link=False) for channel in channels]
    for line in lines:
        line.detail = " · ".join(
            part for part in [line.detail, _tested(line.channel), _token(line.channel, now)] if part
        )
    return Tile("channels/_home_mine.html", {"lines": lines}, order=10)


def home_tiles(request: HttpRequest) -> list[Tile]:
    return by_role(request, admin=admin_tile, rep=rep_tile)


def home_attention(request: HttpRequest) -> list[Attention]:
    member = membership_of(request)
    if not (member and member.is_admin):
        return []
    counts = state_counts(request)
    unverified = Identity.objects.for_tenant(request.tenant).filter(verified_at__isnull=True)  # type: ignore[attr-defined]
    n = unverified.count()
    return [
        Attention(
            "paused-channels",
            counts["paused"],
            ngettext(
                "%(n)s channel paused by a bounce spike: check the bounces, then resume",
                "%(n)s channels paused by a bounce spike: check the bounces, then resume",
                counts["paused"],
            )
            % {"n": counts["paused"]},
            reverse("bounces:spikes"),
            bad=True,
        ),
        Attention(
            "unverified-identities",
            n,
            ngettext(
                "%(n)s sending address not yet verified: each person confirms theirs from the "
                "email we sent",
                "%(n)s sending addresses not yet verified: each person confirms theirs from the "
                "email we sent",
                n,
            )
            % {"n": n},
            reverse("accounts:users"),
        ),
    ]

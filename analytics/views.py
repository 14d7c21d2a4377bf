from __future__ import annotations

import csv
from collections.abc import Iterable
from itertools import chain
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.access import TenantRequest, tenant_member_required
from analytics.charts import step_chart, trend_chart
from analytics.models import Notification
from analytics.selectors import (
    RANGES,
    SORTS,
    Scope,
    campaign_lines,
    started_campaigns,
    template_lines,
    trend,
)
from bounces.models import BounceEvent
from channels.models import Channel
from sending.models import Message, MessageStatus, Template


def _channels(request: TenantRequest) -> list[Channel]:
    """The channels a person may filter by: the team channel and, for admins, everyone's;
    for reps, their own."""
    channels = Channel.objects.for_tenant(request.tenant).select_related("owner")
    if not request.membership.is_admin:
        channels = channels.filter(Q(owner__isnull=True) | Q(owner=request.user))
    return list(channels.order_by("owner__email", "kind"))


def _scope(request: TenantRequest) -> tuple[Scope, dict[str, str], list[Channel]]:
    days = request.GET.get("range", "30")
    days = days if days in RANGES else "30"
    team = request.membership.is_admin and request.GET.get("scope", "team") == "team"
    channels = _channels(request)
    wanted = request.GET.get("channel", "")
    channel = next((c.pk for c in channels if str(c.pk) == wanted), None)
    scope = Scope.of(request.tenant, request.user, team=team, days=int(days), channel=channel)
    chosen = {"range": days, "scope": "team" if team else "me"}
    if channel is not None:
        chosen["channel"] = str(channel)
    return scope, chosen, channels


@require_GET
@tenant_member_required
def analytics_overview(request: TenantRequest) -> HttpResponse:
    """Template analytics: per template sent, bounced hard/soft, rate, top reasons; a trend."""
    scope, chosen, channels = _scope(request)
    sort = request.GET.get("sort", "sent")
    lines = template_lines(scope, sort)
    page = Paginator(lines, 50).get_page(request.GET.get("page"))
    drill = urlencode(chosen)
    context = {
        "lines": lines,
        "page": page,
        "drill": drill,
        "chart": trend_chart(trend(scope)),
        "chosen": chosen,
        "channels": channels,
        "sort": sort if sort in SORTS else "sent",
        "sorts": SORTS,
        "ranges": RANGES,
        "totals": {
            "sent": sum(line.sent for line in lines),
            "hard": sum(line.hard for line in lines),
            "soft": sum(line.soft for line in lines),
        },
    }
    return render(request, "analytics/overview.html", context)


@require_GET
@tenant_member_required
def template_bounces(request: TenantRequest, key: int) -> HttpResponse:
    """The bounced messages of one template in the chosen range, each linked to its bounce."""
    scope, chosen, channels = _scope(request)
    template = Template.objects.filter(tenant=request.tenant, pk=key).first() if key else None
    if key and template is None:
        raise Http404
    messages = Message.objects.for_tenant(request.tenant).filter(
        status=MessageStatus.BOUNCED,
        template_id=key or None,
        sent_at__date__gte=scope.start,
        sent_at__date__lte=scope.end,
    )
    if not scope.team:
        messages = messages.filter(sender=request.user)
    if scope.channel is not None:
        messages = messages.filter(channel_id=scope.channel)
    events = BounceEvent.objects.filter(message=OuterRef("pk"), undone_at__isnull=True).order_by(
        "pk"
    )
    messages = messages.annotate(
        bounce_pk=Subquery(events.values("pk")[:1]),
        bounce_reason=Subquery(events.values("reason")[:1]),
        bounce_hard=Subquery(events.values("hard")[:1]),
    ).order_by("-sent_at")
    page = Paginator(messages, 50).get_page(request.GET.get("page"))
    context = {
        "template": template,
        "page": page,
        "chart": trend_chart(trend(scope, key)),
        "chosen": chosen,
        "channels": channels,
        "ranges": RANGES,
    }
    return render(request, "analytics/template_bounces.html", context)


@require_GET
@tenant_member_required
def campaign_analytics(request: TenantRequest) -> HttpResponse:
    """Per campaign and per step: enrolled, sent, bounced, rate, people ended by a bounce."""
    scope, chosen, channels = _scope(request)
    page = Paginator(started_campaigns(scope), 10).get_page(request.GET.get("page"))
    lines = campaign_lines(scope, page.object_list)
    rows = [(line, step_chart(line.steps)) for line in lines]
    context = {
        "rows": rows,
        "page": page,
        "chosen": chosen,
        "channels": channels,
        "ranges": RANGES,
    }
    return render(request, "analytics/campaigns.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv(filename: str, header: list[str], rows: Iterable[list[object]]) -> StreamingHttpResponse:
    """A streamed CSV download; cells that a spreadsheet would run as a formula are quoted."""
    writer = csv.writer(_Echo())

    def cells(row: list[object]) -> list[object]:
        return [f"'{c}" if isinstance(c, str) and c[:1] in ("=", "+", "-", "@") else c for c in row]

    head: list[object] = list(header)
    lines = (writer.writerow(cells(row)) for row in chain([head], rows))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
@tenant_member_required
def template_csv(request: TenantRequest) -> StreamingHttpResponse:
    scope, chosen, _channels_shown = _scope(request)
    lines = template_lines(scope, request.GET.get("sort", "sent"))
    rows = (
        [
            line.name,
            line.sent,
            line.hard,
            line.soft,
            f"{100 * line.rate:.1f}",
            "; ".join(f"{reason} ({n})" for reason, n in line.reasons),
        ]
        for line in lines
    )
    header = ["template", "sent", "bounced_hard", "bounced_soft", "bounce_rate_pct", "top_reasons"]
    name = f"template-analytics-{chosen['scope']}-{scope.start}-{scope.end}.csv"
    return _csv(name, header, rows)


@require_GET
@tenant_member_required
def campaign_csv(request: TenantRequest) -> StreamingHttpResponse:
    scope, chosen, _channels_shown = _scope(request)
    rows = (
        [
            line.name,
            step.position,
            step.template,
            line.enrolled,
            line.ended_by_bounce,
            step.sent,
            step.hard,
            step.soft,
            f"{100 * step.rate:.1f}",
        ]
        for line in campaign_lines(scope)
        for step in line.steps
    )
    header = [
        "campaign",
        "step",
        "template",
        "enrolled",
        "ended_by_bounce",
        "sent",
        "bounced_hard",
        "bounced_soft",
        "bounce_rate_pct",
    ]
    name = f"campaign-analytics-{chosen['scope']}-{scope.start}-{scope.end}.csv"
    return _csv(name, header, rows)


def _feed(request: TenantRequest) -> QuerySet[Notification]:
    entries = Notification.objects.for_tenant(request.tenant).select_related("user")
    if not request.membership.is_admin:
        entries = entries.filter(user=request.user)
    return entries


@require_GET
@tenant_member_required
def live_feed(request: TenantRequest) -> HttpResponse:
    """Newest first, 50 a page; the first page asks for newer entries every few seconds."""
    page = Paginator(_feed(request), 50).get_page(request.GET.get("page"))
    newest = max((n.pk for n in page.object_list), default=0)
    context = {"page": page, "newest": newest, "live": page.number == 1}
    return render(request, "analytics/live_feed.html", context)


@require_GET
@tenant_member_required
def live_feed_newer(request: TenantRequest) -> HttpResponse:
    """Entries newer than ``after`` (htmx polling): prepended to the list, marked new."""
    try:
        after = int(request.GET.get("after", "0"))
    except ValueError:
        after = 0
    entries = list(_feed(request).filter(pk__gt=after).order_by("-pk")[:50])
    newest = entries[0].pk if entries else after
    context = {"entries": entries, "newest": newest}
    return render(request, "analytics/_feed_newer.html", context)

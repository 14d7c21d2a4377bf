from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.text import slugify
from django.utils.translation import pgettext_lazy
from django.views.decorators.http import require_GET

from accounts.access import TenantRequest, tenant_member_required
from analytics.models import FeedKind, Notification
from analytics.templatetags.bounce_reasons import reason_words
from bounces.models import BounceEvent
from channels.models import Channel
from reports.charts import step_chart, trend_chart
from reports.forms import FilterForm
from reports.selectors import (
    DOMAIN_SORTS,
    RANGES,
    SORTS,
    CampaignLine,
    Scope,
    StepLine,
    add_sent,
    bounced_domains,
    campaign_lines,
    channel_provider_lines,
    domain_lines,
    reason_lines,
    started_campaigns,
    template_lines,
    trend,
)
from sending.models import MessageStatus, Template


def _channels(request: TenantRequest) -> list[Channel]:
    """The channels a person may filter by: the team channel and, for admins, everyone's;
    for reps, their own."""
    channels = Channel.objects.for_tenant(request.tenant).select_related("owner")
    if not request.membership.is_admin:
        channels = channels.filter(Q(owner__isnull=True) | Q(owner=request.user))
    return list(channels.order_by("owner__email", "kind"))


def _scope(request: TenantRequest) -> tuple[Scope, dict[str, Any]]:
    """The scope the query string asks for, and what ``_filters.html`` needs: what was chosen
    (kept by links), the channels a person may filter by, the form with any errors. Bad dates
    or a bad domain fall back to the default and the form says why."""
    form = FilterForm(request.GET)
    start, end, key = form.dates()
    domain = form.chosen_domain()
    team = request.membership.is_admin and request.GET.get("scope", "team") == "team"
    channels = _channels(request)
    wanted = request.GET.get("channel", "")
    channel = next((c.pk for c in channels if str(c.pk) == wanted), None)
    scope = Scope(request.tenant, request.user, team, start, end, channel, domain)
    chosen = {"range": key, "scope": "team" if team else "me"}
    if key == "custom":
        chosen |= {"start": start.isoformat(), "end": end.isoformat()}
    if channel is not None:
        chosen["channel"] = str(channel)
    if domain:
        chosen["domain"] = domain
    filters = {
        "chosen": chosen,
        "channels": channels,
        "ranges": RANGES,
        "scope": scope,
        "filter_form": form,
    }
    return scope, filters


def _csv_name(kind: str, scope: Scope, chosen: dict[str, str]) -> str:
    domain = f"-{scope.domain}" if scope.domain else ""
    return f"{kind}-{chosen['scope']}{domain}-{scope.start}-{scope.end}.csv"


@require_GET
@tenant_member_required
def analytics_overview(request: TenantRequest) -> HttpResponse:
    """Template analytics: per template sent, bounced hard/soft, rate, top reasons; a trend."""
    scope, filters = _scope(request)
    sort = request.GET.get("sort", "sent")
    lines = template_lines(scope, sort)
    page = Paginator(lines, 50).get_page(request.GET.get("page"))
    drill = urlencode(filters["chosen"])
    context = {
        "lines": lines,
        "page": page,
        "drill": drill,
        "chart": trend_chart(trend(scope)),
        "sort": sort if sort in SORTS else "sent",
        "sorts": SORTS,
        **filters,
        "totals": {
            "sent": sum(line.sent for line in lines),
            "hard": sum(line.hard for line in lines),
            "soft": sum(line.soft for line in lines),
            "complained": sum(line.complained for line in lines),
            "replied": sum(line.replied for line in lines),
        },
    }
    return render(request, "analytics/overview.html", context)


def _bounced_messages(scope: Scope, key: int) -> QuerySet:
    """The scope's bounced messages of one template (0: none), newest first, each with the
    bounce that counts."""
    events = BounceEvent.objects.filter(message=OuterRef("pk"), undone_at__isnull=True).order_by(
        "pk"
    )
    return (
        scope.messages()
        .filter(status=MessageStatus.BOUNCED, template_key=key)
        .annotate(bounce_pk=Subquery(events.values("pk")[:1]))
        .order_by("-sent_at", "-pk")
    )


def _template_or_404(request: TenantRequest, key: int) -> Template | None:
    template = Template.objects.filter(tenant=request.tenant, pk=key).first() if key else None
    if key and template is None:
        raise Http404
    return template


@require_GET
@tenant_member_required
def template_bounces(request: TenantRequest, key: int) -> HttpResponse:
    """The bounced messages of one template in the chosen range, each linked to its bounce."""
    scope, filters = _scope(request)
    template = _template_or_404(request, key)
    messages = _bounced_messages(scope, key)
    page = Paginator(messages, 50).get_page(request.GET.get("page"))
    context = {
        "template": template,
        "page": page,
        "chart": trend_chart(trend(scope, key)),
        **filters,
    }
    return render(request, "analytics/template_bounces.html", context)


@require_GET
@tenant_member_required
def campaign_analytics(request: TenantRequest) -> HttpResponse:
    """Per campaign and per step: enrolled, sent, bounced, rate, complaints, replies, people
    ended by a bounce, a complaint or a reply."""
    scope, filters = _scope(request)
    page = Paginator(started_campaigns(scope), 10).get_page(request.GET.get("page"))
    lines = campaign_lines(scope, page.object_list)
    rows = [(line, step_chart(line.steps)) for line in lines]
    context = {
        "rows": rows,
        "page": page,
        **filters,
    }
    return render(request, "analytics/campaigns.html", context)


# The CSV downloads' column headers, in the reader's language (the cells keep their codes).
COLUMNS = {
    "template": pgettext_lazy("CSV column", "template"),
    "sent": pgettext_lazy("CSV column", "sent"),
    "bounced_hard": pgettext_lazy("CSV column", "bounced_hard"),
    "bounced_soft": pgettext_lazy("CSV column", "bounced_soft"),
    "bounce_rate_pct": pgettext_lazy("CSV column", "bounce_rate_pct"),
    "complaints": pgettext_lazy("CSV column", "complaints"),
    "complaint_rate_pct": pgettext_lazy("CSV column", "complaint_rate_pct"),
    "replies": pgettext_lazy("CSV column", "replies"),
    "reply_rate_pct": pgettext_lazy("CSV column", "reply_rate_pct"),
    "top_reasons": pgettext_lazy("CSV column", "top_reasons"),
    "top_reasons_label": pgettext_lazy("CSV column", "top_reasons_label"),
    "campaign": pgettext_lazy("CSV column", "campaign"),
    "step": pgettext_lazy("CSV column", "step"),
    "enrolled": pgettext_lazy("CSV column", "enrolled"),
    "ended_by_bounce": pgettext_lazy("CSV column", "ended_by_bounce"),
    "ended_by_complaint": pgettext_lazy("CSV column", "ended_by_complaint"),
    "ended_by_reply": pgettext_lazy("CSV column", "ended_by_reply"),
    "reason": pgettext_lazy("CSV column", "reason"),
    "class": pgettext_lazy("CSV column", "class"),
    "bounces": pgettext_lazy("CSV column", "bounces"),
    "share_of_bounces_pct": pgettext_lazy("CSV column", "share_of_bounces_pct"),
    "reason_label": pgettext_lazy("CSV column", "reason_label"),
    "recipient_domain": pgettext_lazy("CSV column", "recipient_domain"),
    "channel": pgettext_lazy("CSV column", "channel"),
    "receiving_provider": pgettext_lazy("CSV column", "receiving_provider"),
    "sent_at": pgettext_lazy("CSV column", "sent_at"),
    "recipient": pgettext_lazy("CSV column", "recipient"),
    "subject": pgettext_lazy("CSV column", "subject"),
    "detail": pgettext_lazy("CSV column", "detail"),
}


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv(filename: str, header: list[str], rows: Iterable[list[Any]]) -> StreamingHttpResponse:
    """A streamed CSV download; cells that a spreadsheet would run as a formula are quoted."""
    writer = csv.writer(_Echo())

    def cells(row: list[object]) -> list[object]:
        return [f"'{c}" if isinstance(c, str) and c[:1] in ("=", "+", "-", "@") else c for c in row]

    head: list[object] = [str(COLUMNS.get(name, name)) for name in header]
    lines = (writer.writerow(cells(row)) for row in chain([head], rows))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
@tenant_member_required
def template_csv(request: TenantRequest) -> StreamingHttpResponse:
    scope, filters = _scope(request)
    lines = template_lines(scope, request.GET.get("sort", "sent"))
    rows = (
        [
            line.name,
            line.sent,
            line.hard,
            line.soft,
            f"{100 * line.rate:.1f}",
            line.complained,
            f"{line.complaint_pct:.2f}",
            line.replied,
            f"{line.reply_pct:.1f}",
            "; ".join(f"{reason} ({n})" for reason, n in line.reasons),
            "; ".join(f"{reason_words(reason)} ({n})" for reason, n in line.reasons),
        ]
        for line in lines
    )
    header = [
        "template",
        "sent",
        "bounced_hard",
        "bounced_soft",
        "bounce_rate_pct",
        "complaints",
        "complaint_rate_pct",
        "replies",
        "reply_rate_pct",
        "top_reasons",
        "top_reasons_label",
    ]
    name = _csv_name("template-analytics", scope, filters["chosen"])
    return _csv(name, header, rows)


@require_GET
@tenant_member_required
def campaign_csv(request: TenantRequest) -> StreamingHttpResponse:
    scope, filters = _scope(request)

    def figures(of: CampaignLine | StepLine) -> list[object]:
        # A rate of nothing sent is no rate: empty, as the page's "—".
        sent = bool(of.sent)
        return [
            of.sent,
            of.hard,
            of.soft,
            f"{100 * of.rate:.1f}" if sent else "",
            of.complained,
            f"{of.complaint_pct:.2f}" if sent else "",
            of.replied,
            f"{of.reply_pct:.1f}" if sent else "",
        ]

    def lines() -> Iterator[list[object]]:
        # One row for the whole campaign (its people: enrolled, ended by what), then one per
        # step with that step's own figures; the people columns are the campaign's, so they
        # are left empty on the step rows rather than repeated (a sum over rows stays true).
        for line in campaign_lines(scope):
            people = [line.enrolled, line.ended_by_bounce]
            ended = [line.ended_by_complaint, line.ended_by_reply]
            yield [line.name, "all", "", *people, *figures(line), *ended]
            for step in line.steps:
                yield [line.name, step.position, step.template, "", "", *figures(step), "", ""]

    rows = lines()
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
        "complaints",
        "complaint_rate_pct",
        "replies",
        "reply_rate_pct",
        "ended_by_complaint",
        "ended_by_reply",
    ]
    name = _csv_name("campaign-analytics", scope, filters["chosen"])
    return _csv(name, header, rows)


@require_GET
@tenant_member_required
def breakdown(request: TenantRequest) -> HttpResponse:
    """Why mail bounced (every reason) and where (per recipient domain, sortable, paginated)."""
    scope, filters = _scope(request)
    sort = request.GET.get("sort", "bounced")
    domains = bounced_domains(scope, sort, request.GET.get("page", 1))
    add_sent(scope, domains.object_list)
    overview = reverse("analytics:overview")
    for line in domains.object_list:
        line.link = f"{overview}?{urlencode({**filters['chosen'], 'domain': line.domain})}"
    networks = channel_provider_lines(scope)
    for network in networks:
        chosen = {**filters["chosen"], "channel": str(network.channel_key)}
        network.link = f"{reverse('analytics:breakdown')}?{urlencode(chosen)}"
        network.sent_link = f"{overview}?{urlencode(chosen)}"
    context = {
        "reasons": reason_lines(scope),
        "networks": networks,
        "page": domains,
        "sort": sort if sort in DOMAIN_SORTS else "bounced",
        "sorts": DOMAIN_SORTS,
        **filters,
    }
    return render(request, "analytics/breakdown.html", context)


@require_GET
@tenant_member_required
def reason_csv(request: TenantRequest) -> StreamingHttpResponse:
    scope, filters = _scope(request)
    rows = (
        [
            line.reason,
            "hard" if line.hard else "soft",
            line.bounces,
            f"{100 * line.share:.1f}",
            reason_words(line.reason),
        ]
        for line in reason_lines(scope)
    )
    header = ["reason", "class", "bounces", "share_of_bounces_pct", "reason_label"]
    return _csv(_csv_name("bounce-reasons", scope, filters["chosen"]), header, rows)


@require_GET
@tenant_member_required
def domain_csv(request: TenantRequest) -> StreamingHttpResponse:
    scope, filters = _scope(request)
    rows = (
        [
            row["domain"],
            row["sent"],
            row["hard"],
            row["soft"],
            f"{100 * row['rate']:.1f}",
            row["complained"],
            f"{100 * row['complaint_rate']:.2f}",
        ]
        for row in domain_lines(scope, request.GET.get("sort", "bounced")).iterator()
    )
    header = [
        "recipient_domain",
        "sent",
        "bounced_hard",
        "bounced_soft",
        "bounce_rate_pct",
        "complaints",
        "complaint_rate_pct",
    ]
    return _csv(_csv_name("recipient-domains", scope, filters["chosen"]), header, rows)


@require_GET
@tenant_member_required
def provider_csv(request: TenantRequest) -> StreamingHttpResponse:
    """Sent and bounced per sending channel and receiving provider (the breakdown's table)."""
    scope, filters = _scope(request)
    rows = (
        [
            line.channel,
            line.provider_name,
            line.sent,
            line.hard,
            line.soft,
            f"{100 * line.rate:.1f}",
        ]
        for line in channel_provider_lines(scope)
    )
    header = [
        "channel",
        "receiving_provider",
        "sent",
        "bounced_hard",
        "bounced_soft",
        "bounce_rate_pct",
    ]
    return _csv(_csv_name("channel-by-provider", scope, filters["chosen"]), header, rows)


@require_GET
@tenant_member_required
def template_bounces_csv(request: TenantRequest, key: int) -> StreamingHttpResponse:
    scope, filters = _scope(request)
    template = _template_or_404(request, key)
    rows = (
        [
            m.sent_at.isoformat() if m.sent_at else "",
            m.to_email,
            m.subject,
            m.bounce_reason or "",
            "hard" if m.bounce_hard else "soft",
            m.detail_text,
            reason_words(m.bounce_reason),
        ]
        for m in _bounced_messages(scope, key).iterator(chunk_size=500)
    )
    header = ["sent_at", "recipient", "subject", "reason", "class", "detail", "reason_label"]
    kind = f"bounced-{slugify(template.name) if template else 'no-template'}"
    return _csv(_csv_name(kind, scope, filters["chosen"]), header, rows)


def _feed(request: TenantRequest) -> QuerySet[Notification]:
    entries = Notification.objects.for_tenant(request.tenant).select_related("user")
    if not request.membership.is_admin:
        return entries.filter(user=request.user)
    # The team's mail, and the channel notices addressed to this admin (each admin has one).
    return entries.filter(~Q(kind=FeedKind.CHANNEL) | Q(user=request.user))


def _kind(request: TenantRequest) -> str:
    kind = request.GET.get("kind", "")
    return kind if kind in FeedKind.values else ""


FEED_PAGE = 50


@require_GET
@tenant_member_required
def live_feed(request: TenantRequest) -> HttpResponse:
    """Newest first, 50 at a time, optionally one kind. Older entries are reached by key
    (``before``: the last entry shown), not by page number: no count of a feed that grows with
    every send, no offset into it. The newest page asks for newer entries every few seconds."""
    kind = _kind(request)
    entries = _feed(request)
    if kind:
        entries = entries.filter(kind=kind)
    before = _int(request.GET.get("before"))
    if before:
        anchor = entries.filter(pk=before).values_list("created_at", flat=True).first()
        if anchor is not None:
            entries = entries.filter(Q(created_at__lt=anchor) | Q(created_at=anchor, pk__lt=before))
    found = list(entries[: FEED_PAGE + 1])
    shown = found[:FEED_PAGE]
    context = {
        "entries": shown,
        "older": shown[-1].pk if len(found) > FEED_PAGE else None,
        "newest": max((n.pk for n in shown), default=0),
        "live": not before,
        "kind": kind,
        "kinds": FeedKind.choices,
    }
    return render(request, "analytics/live_feed.html", context)


def _int(value: str | None) -> int:
    try:
        return max(int(value or 0), 0)
    except ValueError:
        return 0


@require_GET
@tenant_member_required
def live_feed_newer(request: TenantRequest) -> HttpResponse:
    """Entries newer than ``after`` (htmx polling): prepended to the list, marked new."""
    after = _int(request.GET.get("after"))
    kind = _kind(request)
    found = _feed(request).filter(pk__gt=after)
    if kind:
        found = found.filter(kind=kind)
    entries = list(found.order_by("-pk")[:50])
    newest = entries[0].pk if entries else after
    context = {"entries": entries, "newest": newest, "kind": kind}
    return render(request, "analytics/_feed_newer.html", context)

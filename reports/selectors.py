"""What the analytics pages show, read from the roll-ups: O(rows shown), not O(messages)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import (
    Case,
    Count,
    F,
    FloatField,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext, gettext_lazy

from accounts.models import Tenant, User
from analytics import rollups
from analytics.domains import DomainRange
from analytics.figures import BounceFigures, ResponseFigures
from analytics.models import (
    DomainReasonRollup,
    DomainRollup,
    DomainTemplateRollup,
    ReasonRollup,
    Rollup,
    TeamRollup,
)
from analytics.team import TeamRange
from bounces.selectors import outcomes
from channels import providers
from channels.models import Channel
from sending.models import (
    CAMPAIGN_ENDED_BOUNCE,
    CAMPAIGN_ENDED_COMPLAINT,
    CAMPAIGN_ENDED_REPLY,
    CAMPAIGN_ENDED_SOFT,
    Campaign,
    CampaignStep,
    Enrollment,
    Template,
)

RANGES = {
    "7": gettext_lazy("Last 7 days"),
    "30": gettext_lazy("Last 30 days"),
    "90": gettext_lazy("Last 90 days"),
}
SORTS = {
    "name": gettext_lazy("Template"),
    "sent": gettext_lazy("Sent"),
    "bounced": gettext_lazy("Bounced"),
    "rate": gettext_lazy("Bounce rate"),
}


@dataclass(frozen=True)
class Scope:
    """Whose mail, sent when, through what, to whom. Figures come from the roll-ups (the team's from
    its own, without the sender). Narrowed to one recipient domain, the days come from the roll-ups
    by domain; the team's figures by template and its reasons from the team's roll-ups by domain and
    template (a row per day and template: a big domain's 90 days read at most 90 rows a template,
    where its messages were 749,490 rows at 10 million messages); a person's own, a channel's and
    those by campaign step from that domain's messages (an index range), as no roll-up carries both
    the domain and those keys."""

    tenant: Tenant
    user: User
    team: bool  # the whole tenant (admins) or the user's own mail
    start: date
    end: date
    channel: int | None = None  # only mail sent through this channel
    domain: str | None = None  # only mail to this recipient domain

    def rows(
        self, model: type[Rollup] | type[ReasonRollup] | type[DomainRollup] | type[TeamRollup]
    ) -> QuerySet:
        rows: QuerySet = model.objects.filter(
            tenant=self.tenant, day__gte=self.start, day__lte=self.end
        )
        if self.channel is not None:
            rows = rows.filter(channel_key=self.channel)
        if self.domain is not None and model is DomainRollup:
            rows = rows.filter(domain=self.domain)
        return rows if self.team else rows.filter(sender=self.user)

    def _team_domain_rows(
        self, model: type[DomainTemplateRollup] | type[DomainReasonRollup]
    ) -> QuerySet | None:
        """The team's rows by domain and template in the scope, or None where those rows do not
        serve it (a person's own mail, one channel's: keys they do not carry)."""
        if self.domain is None or not self.team or self.channel is not None:
            return None
        return model.objects.filter(
            tenant=self.tenant, domain=self.domain, day__gte=self.start, day__lte=self.end
        )

    def by_domain(self) -> DomainRange:
        """The scope's roll-ups by domain, a week at a time where it can (``analytics.domains``)."""
        return DomainRange(
            tenant_id=self.tenant.pk,
            start=self.start,
            end=self.end,
            sender_id=None if self.team else self.user.pk,
            channel_key=self.channel,
            domains=None if self.domain is None else (self.domain,),
        )

    def by_team(self, step_keys: list[int] | None = None) -> TeamRange:
        """The team's roll-ups of the scope (no sender), a week at a time where it can
        (``analytics.team``): for a team scope not narrowed to a domain."""
        return TeamRange(
            tenant_id=self.tenant.pk,
            start=self.start,
            end=self.end,
            channel_key=self.channel,
            step_keys=None if step_keys is None else tuple(step_keys),
        )

    def messages(self) -> QuerySet:
        """The messages behind the figures, annotated as ``bounces.selectors.outcomes``."""
        zone = timezone.get_current_timezone()
        rows = outcomes(self.tenant.pk).filter(
            sent_at__gte=datetime.combine(self.start, time.min, zone),
            sent_at__lt=datetime.combine(self.end + timedelta(days=1), time.min, zone),
        )
        if self.domain is not None:
            rows = rows.filter(to_domain=self.domain)
        if self.channel is not None:
            rows = rows.filter(channel_id=self.channel)
        return rows if self.team else rows.filter(sender=self.user)

    def figures(self, *by: str, **where: object) -> Iterable[dict[str, Any]]:
        """Sent, hard, soft, complained and replied, grouped by ``by`` (``day``,
        ``template_key``, ``step_key``; ``where``: ``template_key`` or ``step_key__in``).
        The team's come from the team's roll-ups (no sender): by day from its daily rows, else
        a week at a time (``analytics.team``). Narrowed to a domain, the figures by day alone
        come from the roll-ups by domain (at most a row per day, sender and channel), the
        team's by day and template from its roll-ups by domain and template, the others from
        the domain's messages."""
        if self.team and self.domain is None and by != ("day",) and set(where) <= {"step_key__in"}:
            steps: Any = where.get("step_key__in")
            return self.by_team(None if steps is None else list(steps)).figures(*by)
        rows = None
        if self.domain is None or (by == ("day",) and not where):
            team = self.team and self.domain is None
            rows = self.rows(
                TeamRollup if team else Rollup if self.domain is None else DomainRollup
            )
        elif {*by, *where} <= {"day", "template_key"}:
            rows = self._team_domain_rows(DomainTemplateRollup)
        if rows is None:
            return self.messages().filter(**where).values(*by).annotate(**rollups.FIGURES)
        return (
            rows.filter(**where)
            .values(*by)
            .annotate(
                sent=Sum("sent"),
                hard=Sum("hard"),
                soft=Sum("soft"),
                complained=Sum("complained"),
                replied=Sum("replied"),
            )
            .order_by()
        )

    def reason_figures(self, *by: str) -> list[dict[str, Any]]:
        """Bounces (``n``) grouped by ``by`` (``template_key``, ``reason``, ``hard``): the
        team's from the team's roll-ups a week at a time (``analytics.team``), or narrowed to
        a domain by domain and template."""
        if self.domain is None and self.team:
            return self.by_team().reasons(*by)
        if self.domain is None:
            return list(self.rows(ReasonRollup).values(*by).annotate(n=Sum("count")).order_by())
        rows = self._team_domain_rows(DomainReasonRollup)
        if rows is not None:
            return list(rows.values(*by).annotate(n=Sum("count")).order_by())
        return list(
            self.messages()
            .filter(rollups.BOUNCED)
            .annotate(reason=F("bounce_reason"), hard=F("bounce_hard"))
            .values(*by)
            .annotate(n=Count("pk"))
        )


@dataclass
class TemplateLine(BounceFigures, ResponseFigures):
    key: int
    name: str
    sent: int = 0
    hard: int = 0
    soft: int = 0
    reasons: list[tuple[str, int]] = field(default_factory=list)
    complained: int = 0
    replied: int = 0


def template_lines(scope: Scope, sort: str = "sent") -> list[TemplateLine]:
    totals = scope.figures("template_key")
    lines = {
        row["template_key"]: TemplateLine(
            row["template_key"],
            "",
            row["sent"],
            row["hard"],
            row["soft"],
            complained=row["complained"],
            replied=row["replied"],
        )
        for row in totals
    }
    names = dict(
        Template.objects.filter(tenant=scope.tenant, pk__in=lines).values_list("pk", "name")
    )
    for key, line in lines.items():
        line.name = names.get(
            key, gettext("Without a template") if key == 0 else gettext("Deleted template")
        )
    reasons = sorted(
        scope.reason_figures("template_key", "reason"),
        key=lambda row: (row["template_key"], -row["n"], row["reason"]),
    )
    for row in reasons:
        found = lines.get(row["template_key"])
        if found is not None and len(found.reasons) < 3 and row["n"]:
            found.reasons.append((row["reason"], row["n"]))
    key = {
        "sent": lambda line: (-line.sent, line.name),
        "bounced": lambda line: (-line.bounced, line.name),
        "rate": lambda line: (-line.rate, line.name),
        "name": lambda line: (line.name.lower(), 0),
    }[sort if sort in SORTS else "sent"]
    return sorted(lines.values(), key=key)


@dataclass(frozen=True)
class Day:
    day: date
    sent: int
    bounced: int


def trend(scope: Scope, template_key: int | None = None) -> list[Day]:
    where = {} if template_key is None else {"template_key": template_key}
    found = {row["day"]: row for row in scope.figures("day", **where)}
    days = []
    day = scope.start
    while day <= scope.end:
        row = found.get(day)
        days.append(Day(day, row["sent"] if row else 0, (row["hard"] + row["soft"]) if row else 0))
        day += timedelta(days=1)
    return days


@dataclass
class StepLine(BounceFigures, ResponseFigures):
    position: int
    template: str
    sent: int = 0
    hard: int = 0
    soft: int = 0
    complained: int = 0
    replied: int = 0


@dataclass
class CampaignLine(BounceFigures, ResponseFigures):
    pk: int
    name: str
    status: str
    enrolled: int = 0
    ended_by_bounce: int = 0
    steps: list[StepLine] = field(default_factory=list)
    ended_by_complaint: int = 0
    ended_by_reply: int = 0

    @property
    def complained(self) -> int:
        return sum(step.complained for step in self.steps)

    @property
    def replied(self) -> int:
        return sum(step.replied for step in self.steps)

    @property
    def sent(self) -> int:
        return sum(step.sent for step in self.steps)

    @property
    def hard(self) -> int:
        return sum(step.hard for step in self.steps)

    @property
    def soft(self) -> int:
        return sum(step.soft for step in self.steps)


def started_campaigns(scope: Scope) -> QuerySet:
    campaigns = Campaign.objects.for_tenant(scope.tenant).exclude(started_at__isnull=True)
    if not scope.team:
        campaigns = campaigns.filter(owner=scope.user)
    return campaigns.order_by("-started_at", "-pk")


def campaign_lines(scope: Scope, campaigns: Iterable[Any] | None = None) -> list[CampaignLine]:
    """Per campaign and step: enrolled, sent, bounced hard/soft, complaints, replies, people
    ended by a bounce, a complaint or a reply, for the campaigns given (a page of them) or all.
    Three queries more, whatever the volume: steps, step roll-ups, enrolment counts."""
    chosen = started_campaigns(scope) if campaigns is None else campaigns
    lines = {c.pk: CampaignLine(c.pk, c.name, c.get_status_display()) for c in chosen}
    if not lines:
        return []
    steps: dict[int, StepLine] = {}
    for step in (
        CampaignStep.objects.filter(campaign_id__in=lines)
        .select_related("template")
        .order_by("campaign_id", "position")
    ):
        steps[step.pk] = StepLine(step.position, step.template.name)
        lines[step.campaign_id].steps.append(steps[step.pk])
    for figures in scope.figures("step_key", step_key__in=list(steps)):
        line = steps[figures["step_key"]]
        line.sent, line.hard, line.soft = figures["sent"], figures["hard"], figures["soft"]
        line.complained, line.replied = figures["complained"], figures["replied"]
    counts = (
        Enrollment.objects.filter(campaign_id__in=lines)
        .values("campaign_id")
        .annotate(
            n=Count("pk"),
            bounced=Count(
                "pk", filter=Q(ended_reason__in=[CAMPAIGN_ENDED_BOUNCE, CAMPAIGN_ENDED_SOFT])
            ),
            complained=Count("pk", filter=Q(ended_reason=CAMPAIGN_ENDED_COMPLAINT)),
            replied=Count("pk", filter=Q(ended_reason=CAMPAIGN_ENDED_REPLY)),
        )
        .order_by()
    )
    for row in counts:
        lines[row["campaign_id"]].enrolled = row["n"]
        lines[row["campaign_id"]].ended_by_bounce = row["bounced"]
        lines[row["campaign_id"]].ended_by_complaint = row["complained"]
        lines[row["campaign_id"]].ended_by_reply = row["replied"]
    return list(lines.values())


@dataclass(frozen=True)
class ReasonLine:
    reason: str
    hard: bool
    bounces: int
    share: float  # of all bounces in the scope

    @property
    def bar(self) -> str:
        """The share as an SVG width out of 100, formatted for the attribute."""
        return f"{100 * self.share:.1f}"

    @property
    def percent(self) -> str:
        """The share as people read it, in their language's numbers ("63.6 %", "63,6 %")."""
        return f"{number_format(round(100 * self.share, 1), decimal_pos=1)} %"


def reason_lines(scope: Scope) -> list[ReasonLine]:
    """Why mail bounced: every reason with its class and count, most frequent first."""
    rows = sorted(
        scope.reason_figures("reason", "hard"), key=lambda row: (-row["n"], row["reason"])
    )
    total = sum(row["n"] for row in rows)
    return [
        ReasonLine(row["reason"] or "unknown", row["hard"], row["n"], row["n"] / total)
        for row in rows
        if row["n"]
    ]


DOMAIN_SORTS = {"bounced": gettext_lazy("Bounced"), "domain": gettext_lazy("Domain")}


@dataclass
class DomainLine(BounceFigures, ResponseFigures):
    domain: str
    hard: int
    soft: int
    sent: int = 0
    link: str = ""  # template analytics narrowed to this domain
    complained: int = 0
    replied: int = 0


DOMAINS_PER_PAGE = 50


def bounced_domains(scope: Scope, sort: str = "bounced", number: object = 1) -> Page:
    """One page of the recipient domains with at least one bounce or complaint in the scope,
    most bounces first (or by name), without their sent figures (``add_sent`` fills those in).

    Read from the roll-up rows that have bounces only (a partial index), a week at a time where
    it can (``analytics.domains``). PostgreSQL groups, sorts and cuts the page, and counts the
    domains in the same pass (``COUNT(*) OVER ()``): only the 50 shown come back to Python. A
    number past the end gives the last page."""
    rows, params = scope.by_domain().rows(bounced=True)
    order = "domain" if sort == "domain" else "bounced DESC, domain"
    grouped = (
        "SELECT domain, SUM(hard) AS hard, SUM(soft) AS soft, "  # noqa: S608 - our names
        "SUM(complained) AS complained, SUM(hard) + SUM(soft) AS bounced, "
        f"COUNT(*) OVER () AS total FROM ({rows}) r GROUP BY domain "
        "HAVING SUM(hard) + SUM(soft) + SUM(complained) > 0"
    )
    try:
        wanted = max(int(str(number)), 1)
    except ValueError:
        wanted = 1
    per = DOMAINS_PER_PAGE

    def page(n: int) -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute(
                f"{grouped} ORDER BY {order} LIMIT %s OFFSET %s", [*params, per, (n - 1) * per]
            )
            return cursor.fetchall()

    found = page(wanted)
    if not found and wanted > 1:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM ({grouped}) g", params)  # noqa: S608
            wanted = max(-(-cursor.fetchone()[0] // per), 1)
        found = page(wanted)
    paginator = Paginator(range(found[0][5] if found else 0), per)  # counted already
    lines = [
        DomainLine(domain, hard, soft, complained=complained)
        for domain, hard, soft, complained, _, _ in found
    ]
    return Page(lines, wanted, paginator)


def add_sent(scope: Scope, lines: Iterable[DomainLine]) -> None:
    """Fill in the mail sent to each of these domains in the scope (one query), a week at a
    time where it can (``analytics.domains``)."""
    found = {line.domain: line for line in lines}
    if not found:
        return
    rows, params = replace(scope.by_domain(), domains=tuple(found)).rows()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT domain, SUM(sent) FROM ({rows}) r GROUP BY domain",  # noqa: S608 - our names
            params,
        )
        for domain, sent in cursor.fetchall():
            found[domain].sent = sent


@dataclass
class ChannelProviderLine(BounceFigures):
    """Mail through one channel to one receiving provider's mailboxes."""

    channel_key: int
    provider: str
    sent: int
    hard: int
    soft: int
    channel: str = ""  # its label
    link: str = ""  # the breakdown narrowed to the channel
    sent_link: str = ""  # template analytics narrowed to the channel

    @property
    def provider_name(self) -> str:
        return providers.shown_name(self.provider)


_PROVIDER_ORDER = [providers.GOOGLE, providers.MICROSOFT, providers.YAHOO, providers.OTHER]


def channel_provider_lines(scope: Scope) -> list[ChannelProviderLine]:
    """Sent and bounced per sending channel and receiving provider, from the roll-ups by domain:
    each domain's provider is its consumer group or, else, its cached MX classification
    (``channels.providers``; "not classified yet" until its look-up). Channels by name, then
    Google, Microsoft, Yahoo, others.

    PostgreSQL sums the scope's rows per channel and domain (one row per domain and channel
    however many days and senders), a week at a time where it can (``analytics.domains``), and
    each domain is classified once, here: classifying
    every roll-up row in SQL looked the domain up once per row (52,000 look-ups for a big
    tenant's month, 126 ms)."""
    by_domain, params = scope.by_domain().rows()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT channel_key, domain, SUM(sent), SUM(hard), SUM(soft) "  # noqa: S608
            f"FROM ({by_domain}) r GROUP BY channel_key, domain "
            "HAVING SUM(sent) <> 0 OR SUM(hard) <> 0 OR SUM(soft) <> 0 "
            "OR SUM(complained) <> 0 OR SUM(replied) <> 0",
            params,
        )
        rows = cursor.fetchall()
    provider = providers.providers_of(domain for _, domain, *_ in rows)
    sums: dict[tuple[int, str], list[int]] = {}
    for channel_key, domain, sent, hard, soft in rows:
        found = sums.setdefault((channel_key, provider[domain.lower()]), [0, 0, 0])
        found[0] += sent
        found[1] += hard
        found[2] += soft
    lines = [
        ChannelProviderLine(channel_key, key, sent, hard, soft)
        for (channel_key, key), (sent, hard, soft) in sums.items()
    ]
    channels = Channel.objects.filter(
        tenant=scope.tenant, pk__in={line.channel_key for line in lines}
    ).select_related("owner")
    labels = {channel.pk: channel.label for channel in channels}
    for line in lines:
        line.channel = labels.get(line.channel_key, "A removed channel")
    order = {key: n for n, key in enumerate(_PROVIDER_ORDER)}
    return sorted(
        lines,
        key=lambda line: (line.channel.lower(), line.channel_key, order.get(line.provider, 9)),
    )


CSV_DOMAIN_SORTS = ("bounced", "sent", "rate", "domain")


def domain_lines(scope: Scope, sort: str = "bounced") -> QuerySet:
    """Every recipient domain with sent, hard, soft, bounced, rate, complained and its rate, for
    the CSV export (which
    reads all of the scope's domain roll-ups, streamed)."""
    order = {
        "bounced": ["-bounced", "domain"],
        "sent": ["-sent", "domain"],
        "rate": ["-rate", "-bounced", "domain"],
        "domain": ["domain"],
    }[sort if sort in CSV_DOMAIN_SORTS else "bounced"]
    return (
        scope.rows(DomainRollup)
        .values("domain")
        .annotate(
            sent=Sum("sent"), hard=Sum("hard"), soft=Sum("soft"), complained=Sum("complained")
        )
        .annotate(bounced=F("hard") + F("soft"))
        .annotate(
            rate=Case(
                When(sent=0, then=Value(0.0)),
                default=Cast(F("bounced"), FloatField()) / Cast(F("sent"), FloatField()),
            ),
            complaint_rate=Case(
                When(sent=0, then=Value(0.0)),
                default=Cast(F("complained"), FloatField()) / Cast(F("sent"), FloatField()),
            ),
        )
        .order_by(*order)
    )

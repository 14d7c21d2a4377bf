"""What analytics adds to the home page (``accounts.home``), from the roll-ups: bounce and
complaint rates over 7 and 30 days with a 14-day trend, the top reasons and receiving domains
(admins, the whole team), and the rep's own week: sent, bounced, complaints and replies.

Query budget, whatever the amount of mail: three queries for the admin (the team's roll-up by
day over 30 days, at most 30 rows; the top reasons; the top bounced domains), one for a rep."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from django.db import connection
from django.db.models import Sum
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext

from accounts.home import Tile
from analytics.domains import DomainRange
from analytics.figures import BounceFigures, ResponseFigures
from analytics.models import Rollup, TeamRollup
from analytics.team import TeamRange
from msc_admin.humanize import percent_of

TOP = 3
TREND_DAYS = 14


@dataclass
class Period(BounceFigures, ResponseFigures):
    sent: int = 0
    hard: int = 0
    soft: int = 0
    complained: int = 0
    replied: int = 0

    def add(self, row: dict[str, Any]) -> None:
        for name in ("sent", "hard", "soft", "complained", "replied"):
            setattr(self, name, getattr(self, name) + row[name])


@dataclass
class Bar:
    day: date
    sent: int
    bounced: int
    x: int = 0
    height: int = 0  # of 40

    @property
    def y(self) -> int:
        return 40 - self.height


@dataclass
class Rates:
    week: Period
    before: Period  # the 7 days before the week
    month: Period
    bars: list[Bar] = field(default_factory=list)

    @property
    def trend(self) -> str:
        """The week's bounce rate against the 7 days before, in words."""
        if not self.week.sent or not self.before.sent:
            return ""
        now = percent_of(self.week.bounced, self.week.sent)
        then = percent_of(self.before.bounced, self.before.sent)
        if now == then:
            return gettext("same as the 7 days before (%(then)s)") % {"then": then}
        if self.week.rate > self.before.rate:
            return gettext("up from %(then)s the 7 days before") % {"then": then}
        return gettext("down from %(then)s the 7 days before") % {"then": then}

    @property
    def worse(self) -> bool:
        return bool(self.trend) and self.week.rate > self.before.rate


_FIGURES = {n: Sum(n) for n in ("sent", "hard", "soft", "complained", "replied")}


def _rows(request: HttpRequest, model: Any, since: date, team: bool) -> Any:
    """The rows since that day: the team's (``TeamRollup`` has no sender) or the user's."""
    rows = model.objects.filter(tenant=request.tenant, day__gte=since)  # type: ignore[attr-defined]
    return rows if team else rows.filter(sender=request.user)


def rates(request: HttpRequest, *, team: bool) -> Rates:
    today = timezone.localdate()
    week_start, before_start = today - timedelta(days=6), today - timedelta(days=13)
    month_start = today - timedelta(days=29)
    result = Rates(Period(), Period(), Period())
    by_day = {}
    days = _rows(request, TeamRollup if team else Rollup, month_start, team)
    for row in days.values("day").annotate(**_FIGURES):
        by_day[row["day"]] = row
        result.month.add(row)
        if row["day"] >= week_start:
            result.week.add(row)
        elif row["day"] >= before_start:
            result.before.add(row)
    days = [today - timedelta(days=n) for n in range(TREND_DAYS - 1, -1, -1)]
    shares = [(r["hard"] + r["soft"]) / r["sent"] for r in by_day.values() if r["sent"]]
    worst = max(shares, default=0)
    for n, day in enumerate(days):
        row = by_day.get(day)
        sent = row["sent"] if row else 0
        bounced = (row["hard"] + row["soft"]) if row else 0
        share = bounced / sent if sent else 0
        height = round(38 * share / worst) + (1 if sent else 0) if worst else (1 if sent else 0)
        result.bars.append(Bar(day, sent, bounced, x=n * 10, height=min(height, 40)))
    return result


def _admin_tile(request: HttpRequest) -> Tile:
    since = timezone.localdate() - timedelta(days=29)
    # The team's bounces by reason, a week at a time where it can (``analytics.team``).
    reasons = TeamRange(
        tenant_id=request.tenant.pk,  # type: ignore[attr-defined]
        start=since,
        end=timezone.localdate(),
    ).reasons("reason", top=TOP)
    # The most bounced domains from the rows with bounces (a partial index), a week at a time
    # where it can (``analytics.domains``), then all their sent mail in the range: a day without
    # a bounce counts in "sent" too, as on the page the figure links to.
    whose = DomainRange(
        tenant_id=request.tenant.pk,  # type: ignore[attr-defined]
        start=since,
        end=timezone.localdate(),
    )
    by_domain, params = whose.rows(bounced=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT domain, SUM(hard) + SUM(soft) AS bounced "  # noqa: S608 - our names
            f"FROM ({by_domain}) r GROUP BY domain HAVING SUM(hard) + SUM(soft) > 0 "
            "ORDER BY bounced DESC, domain LIMIT %s",
            [*params, TOP],
        )
        domains: list[dict[str, Any]] = [
            {"domain": domain, "bounced": bounced} for domain, bounced in cursor.fetchall()
        ]
        if domains:
            sent_rows, params = replace(whose, domains=tuple(d["domain"] for d in domains)).rows()
            cursor.execute(
                f"SELECT domain, SUM(sent) FROM ({sent_rows}) r GROUP BY domain",  # noqa: S608
                params,
            )
            sent = dict(cursor.fetchall())
            for d in domains:
                d["sent"] = sent.get(d["domain"], 0)
    return Tile(
        "analytics/_home_rates.html",
        {"rates": rates(request, team=True), "reasons": reasons, "domains": domains},
        order=30,
    )


def home_tiles(request: HttpRequest) -> list[Tile]:
    member = getattr(request, "membership", None)
    if not member:
        return []
    if member.is_admin:
        return [_admin_tile(request)]
    week = rates(request, team=False)
    return [Tile("analytics/_home_week.html", {"rates": week}, order=30)]

"""A range of days of the roll-ups by recipient domain, read from as few rows as possible.

``DomainRollup`` has a row per day, sender, channel and domain: a big tenant's month is 30 days
of every domain it mails, and grouping them all grew with the mail (150,000 rows for 30 days at
10 million messages). ``DomainWeekRollup`` holds the same figures summed by week, so a range
reads each of its weeks from one of two places, whichever touches fewer days of daily rows:

- the week's daily rows inside the range (``+``), or
- the week's row, minus the daily rows of the week's days outside the range (``-``): the week
  holding today is whole but for days not lived yet, which have no rows to read.

So "the last 30 days" is five weeks of weekly rows and at most three days of daily rows at its
start, and the sums are exactly those of the daily rows (a week's row is the sum of its days',
kept so by every writer, ``analytics.rollups``). Each piece is one ``UNION ALL`` branch of a
derived table whose rows carry signed figures; callers group it as they would the daily rows.

The team's range (no sender) reads the same way from the team's tables, ``TeamDomainRollup``
and ``TeamDomainWeekRollup``: the senders summed, at most a row per channel and domain a day or
a week, each table's unique key carrying the figures so that the range is an index-only scan
of contiguous index pages. At 10 million messages the senders' weekly rows of the largest
tenant's 30 days were 29,121 on 26,097 table pages, one page a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.utils import timezone

from analytics.models import DomainRollup, DomainWeekRollup, TeamDomainRollup, TeamDomainWeekRollup
from analytics.rollups import week_of

DAILY = DomainRollup._meta.db_table
WEEKLY = DomainWeekRollup._meta.db_table
TEAM_DAILY = TeamDomainRollup._meta.db_table
TEAM_WEEKLY = TeamDomainWeekRollup._meta.db_table
FIGURES = ("sent", "hard", "soft", "complained", "replied")
# The condition of both tables' partial index of rows with bounces or complaints.
BOUNCED = "(hard > 0 OR soft > 0 OR complained > 0)"


@dataclass(frozen=True)
class Piece:
    table: str
    first: date
    last: date
    sign: int  # +1 or -1


def _lived(first: date, last: date, today: date) -> int:
    """Days of [first, last] up to today: the days that can have rows."""
    return max(((min(last, today) - first).days + 1), 0)


def pieces(
    start: date, end: date, today: date, *, daily: str = DAILY, weekly: str = WEEKLY
) -> list[Piece]:
    """The branches that sum to the daily rows of [start, end], adjacent ones merged: one
    branch for a run of whole weeks reads their rows in one range of the index (and lets
    PostgreSQL read their table pages once, by a bitmap), rather than one index scan a week.
    ``daily`` and ``weekly`` name the pair of tables: the senders' by domain, the team's by
    domain (``DomainRange``) or the team's by template (``analytics.team``)."""
    found: list[Piece] = []

    def add(piece: Piece) -> None:
        if piece.first > piece.last:
            return
        step = timedelta(days=7 if piece.table == weekly else 1)  # weeks' rows are Mondays
        for n, other in enumerate(found):
            if (other.table, other.sign) == (piece.table, piece.sign) and (
                other.last + step == piece.first
            ):
                found[n] = Piece(other.table, other.first, piece.last, piece.sign)
                return
        found.append(piece)

    week = week_of(start)
    while week <= end:
        week_end = week + timedelta(days=6)
        first, last = max(start, week), min(end, week_end)
        inside = _lived(first, last, today)
        before, after = (week, first - timedelta(days=1)), (last + timedelta(days=1), week_end)
        outside = _lived(*before, today) + _lived(*after, today)
        if outside < inside:
            add(Piece(weekly, week, week, 1))
            add(Piece(daily, *before, -1))
            add(Piece(daily, *after, -1))
        else:
            add(Piece(daily, first, last, 1))
        week += timedelta(days=7)
    return found


@dataclass(frozen=True)
class DomainRange:
    """Whose rows: a tenant's, over [start, end], optionally one sender's, one channel's, one
    domain's or some domains'."""

    tenant_id: int
    start: date
    end: date
    sender_id: int | None = None
    channel_key: int | None = None
    domains: tuple[str, ...] | None = None

    def rows(self, *, bounced: bool = False) -> tuple[str, list[Any]]:
        """SQL of a derived table (channel_key, domain and the figures, signed) whose sums equal
        those of the daily rows in range, and its parameters; the team's tables when no sender
        is chosen. ``bounced``: only
        rows with a bounce or a complaint (the partial indexes), which leaves the sums of
        hard, soft and complained as they are."""
        where: list[str] = ["tenant_id = %s"]
        params: list[Any] = [self.tenant_id]
        daily, weekly = TEAM_DAILY, TEAM_WEEKLY
        if self.sender_id is not None:
            daily, weekly = DAILY, WEEKLY
            where.append("sender_id = %s")
            params.append(self.sender_id)
        if self.channel_key is not None:
            where.append("channel_key = %s")
            params.append(self.channel_key)
        if self.domains is not None:
            # ``IN`` with a placeholder a domain, not ``= ANY(array)``: the demo runs on SQLite.
            chosen = list(self.domains)
            where.append(f"domain IN ({', '.join(['%s'] * len(chosen))})" if chosen else "false")
            params += chosen
        if bounced:
            where.append(BOUNCED)
        branches: list[str] = []
        values: list[Any] = []
        for piece in pieces(self.start, self.end, timezone.localdate(), daily=daily, weekly=weekly):
            sign = "" if piece.sign > 0 else "-"
            figures = ", ".join(f"{sign}{name} AS {name}" for name in FIGURES)
            branches.append(
                f"SELECT channel_key, domain, {figures} "  # noqa: S608 - our names
                f"FROM {piece.table} WHERE {' AND '.join(where)} AND day BETWEEN %s AND %s"
            )
            values += [*params, piece.first, piece.last]
        if not branches:  # an empty range
            return f"SELECT channel_key, domain, {', '.join(FIGURES)} " + (
                f"FROM {daily} WHERE false"
            ), []
        return " UNION ALL ".join(branches), values

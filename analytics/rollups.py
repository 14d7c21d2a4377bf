"""Daily roll-ups, kept in step with the raw tables.

Each change that moves a figure bumps it in the same transaction: a send adds to ``sent`` on the
day it went out; a bounce adds to ``hard`` or ``soft`` (and to its reason) on the day the message
was *sent*, so a day's bounce rate is the share of that day's mail that bounced; "not a bounce"
takes it back. A complaint or a reply adds to ``complained`` or ``replied``, once per message,
on the day it was sent too. The bump is one ``INSERT … ON CONFLICT … DO UPDATE SET n = n +
excluded.n`` per row, so concurrent workers add up instead of overwriting each other.
``rebuild`` recomputes everything from the messages, bounce events and responses and must give
the same rows.

This module is the low layer the features write through: it knows the roll-up tables only. A
message is whatever has the attributes of ``Sent``; the raw rows of a rebuild are handed in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from django.db import connection, models, transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncWeek
from django.utils import timezone

from analytics.models import (
    DomainReasonRollup,
    DomainRollup,
    DomainTemplateRollup,
    DomainWeekRollup,
    ReasonRollup,
    Rollup,
    SentAndBounced,
    TeamDomainRollup,
    TeamDomainWeekRollup,
)


class Sent(Protocol):
    """What the roll-ups read of a sent message (``sending.models.Message``)."""

    @property
    def tenant_id(self) -> int: ...
    @property
    def sender_id(self) -> int: ...
    @property
    def template_id(self) -> int | None: ...
    @property
    def campaign_step_id(self) -> int | None: ...
    @property
    def channel_id(self) -> int | None: ...
    @property
    def to_domain(self) -> str: ...
    @property
    def sent_at(self) -> datetime | None: ...


# In the order of each table's unique key: every writer sorts its rows by them (``_upsert``).
_ROLLUP_KEYS = ("tenant_id", "day", "sender_id", "template_key", "step_key", "channel_key")
_REASON_KEYS = ("tenant_id", "day", "sender_id", "template_key", "channel_key", "reason", "hard")
_DOMAIN_KEYS = ("tenant_id", "day", "sender_id", "channel_key", "domain")
_TEAM_DOMAIN_KEYS = ("tenant_id", "day", "channel_key", "domain")
_DOMAIN_TEMPLATE_KEYS = ("tenant_id", "domain", "day", "template_key")
_DOMAIN_REASON_KEYS = ("tenant_id", "domain", "day", "template_key", "reason", "hard")
_COUNTS = ("sent", "hard", "soft", "complained", "replied")


def _upsert(
    model: type[models.Model], keys: tuple[str, ...], counts: tuple[str, ...], rows: list[tuple]
) -> None:
    if not rows:
        return
    # One order for every writer: two batches touching the same rows lock them in the same
    # sequence, so concurrent bumps wait for each other instead of deadlocking.
    rows = sorted(rows)
    table = model._meta.db_table
    columns = (*keys, *counts)
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counts)
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES "  # noqa: S608 - our own names
        + ", ".join([placeholders] * len(rows))
        + f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [value for row in rows for value in row])


def _day(moment: datetime) -> date:
    return timezone.localdate(moment)


def week_of(day: date) -> date:
    """The Monday of the week ``day`` is in: the key of its ``DomainWeekRollup`` rows."""
    return day - timedelta(days=day.weekday())


def _summed(rows: list[tuple], key: Callable[[tuple], tuple], width: int) -> list[tuple]:
    """``rows`` (a key, then ``width`` figures) summed by ``key(row)``: one statement may not
    touch a row twice."""
    found: dict[tuple, list[int]] = {}
    for row in rows:
        figures = found.setdefault(key(row), [0] * width)
        for n, value in enumerate(row[-width:]):
            figures[n] += value
    return [(*k, *v) for k, v in found.items()]


def _upsert_domains(rows: list[tuple], templates: list[tuple] | None = None) -> None:
    """Bump the daily rows by domain and, after them, their weeks' rows, the team's rows (the
    senders summed) and the team's weeks' rows by the same amounts; with ``templates`` (rows
    keyed as ``DomainTemplateRollup``), the team's rows by domain and template too. Every
    writer takes the tables in this order, each sorted, so concurrent bumps still queue instead
    of deadlocking, and a week's row stays the sum of its days', a team's of its senders'."""
    n = len(_COUNTS)
    team = _summed(rows, lambda r: (r[0], r[1], r[3], r[4]), n)
    _upsert(DomainRollup, _DOMAIN_KEYS, _COUNTS, rows)
    _upsert(
        DomainWeekRollup,
        _DOMAIN_KEYS,
        _COUNTS,
        _summed(rows, lambda r: (r[0], week_of(r[1]), *r[2:5]), n),
    )
    _upsert(TeamDomainRollup, _TEAM_DOMAIN_KEYS, _COUNTS, team)
    _upsert(
        TeamDomainWeekRollup,
        _TEAM_DOMAIN_KEYS,
        _COUNTS,
        _summed(team, lambda r: (r[0], week_of(r[1]), *r[2:4]), n),
    )
    if templates:
        _upsert(DomainTemplateRollup, _DOMAIN_TEMPLATE_KEYS, _COUNTS, templates)


def count_sent(message: Sent, sent_at: datetime) -> None:
    key = _rollup_key(message, sent_at)
    _upsert(Rollup, _ROLLUP_KEYS, _COUNTS, [(*key, 1, 0, 0, 0, 0)])
    _upsert_domains(
        [(*_domain_key(message, key), 1, 0, 0, 0, 0)],
        [(*_domain_template_key(message, key), 1, 0, 0, 0, 0)],
    )


def count_sent_after(message: Sent, sent_at: datetime, source: str) -> list[tuple[str, list]]:
    """``count_sent`` as ``INSERT … SELECT … FROM source ON CONFLICT …`` statements (SQL and
    parameters), for a caller that records the send in the same statement: a ``WITH`` query
    whose ``source`` names the row it marked sent, so the bump happens only if that row was,
    and all of it commits at once (PostgreSQL)."""
    key = _rollup_key(message, sent_at)
    domain = (*_domain_key(message, key), 1, 0, 0, 0, 0)
    week = (domain[0], week_of(domain[1]), *domain[2:])
    team = (domain[0], domain[1], *domain[3:])
    team_week = (team[0], week[1], *team[2:])
    template = (*_domain_template_key(message, key), 1, 0, 0, 0, 0)
    return [
        _upsert_from(Rollup, _ROLLUP_KEYS, (*key, 1, 0, 0, 0, 0), source),
        _upsert_from(DomainRollup, _DOMAIN_KEYS, domain, source),
        _upsert_from(DomainWeekRollup, _DOMAIN_KEYS, week, source),
        _upsert_from(TeamDomainRollup, _TEAM_DOMAIN_KEYS, team, source),
        _upsert_from(TeamDomainWeekRollup, _TEAM_DOMAIN_KEYS, team_week, source),
        _upsert_from(DomainTemplateRollup, _DOMAIN_TEMPLATE_KEYS, template, source),
    ]


def _upsert_from(
    model: type[models.Model], keys: tuple[str, ...], row: tuple, source: str
) -> tuple[str, list]:
    table = model._meta.db_table
    columns = (*keys, *_COUNTS)
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in _COUNTS)
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - our own names
        f"SELECT {', '.join(['%s'] * len(columns))} FROM {source} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}"
    )
    return sql, list(row)


def _rollup_key(m: Sent, sent_at: datetime) -> tuple:
    return (
        m.tenant_id,
        _day(sent_at),
        m.sender_id,
        m.template_id or 0,
        m.campaign_step_id or 0,
        m.channel_id or 0,
    )


def _domain_key(m: Sent, key: tuple) -> tuple:
    return (key[0], key[1], key[2], key[5], m.to_domain)


def _domain_template_key(m: Sent, key: tuple) -> tuple:
    return (key[0], m.to_domain, key[1], key[3])


def _merged(counter: Counter[tuple], first: object) -> dict[tuple, list[int]]:
    """Counts keyed by (*key, class) as one row per key, [class ``first``'s, the other's]: a
    bounce moved from hard to soft (a re-classification) bumps both columns of the same row in
    one statement."""
    merged: dict[tuple, list[int]] = {}
    for with_class, n in counter.items():
        merged.setdefault(with_class[:-1], [0, 0])[0 if with_class[-1] == first else 1] += n
    return merged


def count_bounces(changes: Iterable[tuple[Sent | None, bool, str, int]]) -> None:
    """Bounce figures moved: (message, hard, reason, +1 or -1) for each message."""
    totals: Counter[tuple] = Counter()
    domains: Counter[tuple] = Counter()
    templates: Counter[tuple] = Counter()
    reasons: Counter[tuple] = Counter()
    domain_reasons: Counter[tuple] = Counter()
    for m, hard, reason, sign in changes:
        if m is None:
            continue
        sent_at = m.sent_at
        if sent_at is None:
            continue
        key = _rollup_key(m, sent_at)
        totals[(*key, hard)] += sign
        domains[(*_domain_key(m, key), hard)] += sign
        templates[(*_domain_template_key(m, key), hard)] += sign
        reasons[(key[0], key[1], key[2], key[3], key[5], reason, hard)] += sign
        domain_reasons[(*_domain_template_key(m, key), reason, hard)] += sign
    _upsert(
        Rollup,
        _ROLLUP_KEYS,
        _COUNTS,
        [(*k, 0, h, s, 0, 0) for k, (h, s) in _merged(totals, True).items() if h or s],
    )
    _upsert_domains(
        [(*k, 0, h, s, 0, 0) for k, (h, s) in _merged(domains, True).items() if h or s],
        [(*k, 0, h, s, 0, 0) for k, (h, s) in _merged(templates, True).items() if h or s],
    )
    _upsert(
        ReasonRollup,
        _REASON_KEYS,
        ("count",),
        [(*key, n) for key, n in reasons.items() if n],
    )
    _upsert(
        DomainReasonRollup,
        _DOMAIN_REASON_KEYS,
        ("count",),
        [(*key, n) for key, n in domain_reasons.items() if n],
    )
    if any(n < 0 for n in reasons.values()):
        # A reason taken back to nothing is no row at all, as after a rebuild.
        tenants = {key[0] for key in reasons}
        ReasonRollup.objects.filter(tenant_id__in=tenants, count=0).delete()
        DomainReasonRollup.objects.filter(tenant_id__in=tenants, count=0).delete()


COMPLAINED = "complained"
REPLIED = "replied"


def count_responses(changes: Iterable[tuple[Sent, str]]) -> None:
    """Recipients responded, each message once: (message, ``COMPLAINED`` or ``REPLIED``),
    counted on the day the message was sent, as its bounce would be."""
    totals: Counter[tuple] = Counter()
    domains: Counter[tuple] = Counter()
    templates: Counter[tuple] = Counter()
    for m, kind in changes:
        if m.sent_at is None:
            continue
        key = _rollup_key(m, m.sent_at)
        totals[(*key, kind)] += 1
        domains[(*_domain_key(m, key), kind)] += 1
        templates[(*_domain_template_key(m, key), kind)] += 1
    _upsert(
        Rollup,
        _ROLLUP_KEYS,
        _COUNTS,
        [(*k, 0, 0, 0, c, r) for k, (c, r) in _merged(totals, COMPLAINED).items()],
    )
    _upsert_domains(
        [(*k, 0, 0, 0, c, r) for k, (c, r) in _merged(domains, COMPLAINED).items()],
        [(*k, 0, 0, 0, c, r) for k, (c, r) in _merged(templates, COMPLAINED).items()],
    )


# Figures of rows annotated as ``bounces.selectors.outcomes`` annotates the sent mail.
BOUNCED = Q(bounce_hard__isnull=False)
FIGURES = {
    "sent": Count("pk"),
    "hard": Count("pk", filter=Q(bounce_hard=True)),
    "soft": Count("pk", filter=Q(bounce_hard=False)),
    "complained": Count("pk", filter=Q(complained_at__isnull=False)),
    "replied": Count("pk", filter=Q(replied_at__isnull=False)),
}

# The tables of sent and bounced mail, each with the column of the outcomes filling each of its
# keys beyond the day, sender and channel.
_SENT_AND_BOUNCED: tuple[tuple[type[SentAndBounced], dict[str, str]], ...] = (
    (Rollup, {"template_key": "template_key", "step_key": "step_key"}),
    (DomainRollup, {"domain": "to_domain"}),
)


def _insert_grouped(
    model: type[models.Model], tenant_id: int, columns: dict[str, str], rows: QuerySet[Any, Any]
) -> None:
    """``INSERT INTO model (tenant_id, *columns) SELECT … FROM (rows)``: the grouped rows go
    from the raw tables to the roll-up in the database, never through Python (``columns``
    maps each roll-up column to the column of ``rows`` that fills it). They go in by day, as
    the day-by-day upserts write them, so the pages' ranges of days read few table pages."""
    sql, params = rows.query.sql_with_params()
    table = model._meta.db_table
    quote = connection.ops.quote_name
    into = ", ".join(quote(c) for c in ("tenant_id", *columns))
    select = ", ".join(f"grouped.{quote(source)}" for source in columns.values())
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(table)} ({into}) "  # noqa: S608 - our own names
            f"SELECT %s, {select} FROM ({sql}) grouped ORDER BY grouped.{quote(columns['day'])}",
            [tenant_id, *params],
        )


# Every roll-up table, in the order the bumps write them.
ROLLUPS: tuple[type[models.Model], ...] = (
    Rollup,
    DomainRollup,
    DomainWeekRollup,
    TeamDomainRollup,
    TeamDomainWeekRollup,
    DomainTemplateRollup,
    ReasonRollup,
    DomainReasonRollup,
)


def _rebuild_team(tenant_id: int, messages: QuerySet[Any, Any]) -> None:
    """The team's roll-ups of one tenant: by channel and domain from the daily rows by domain
    just written (the senders summed), their weeks from those, and by domain and template
    (with reasons) from the messages."""
    sums = {count: Sum(count) for count in _COUNTS}
    same = {count: count for count in _COUNTS}
    team = (
        DomainRollup.objects.filter(tenant_id=tenant_id)
        .values("day", "channel_key", "domain")
        .annotate(**sums)
        .order_by()
    )
    keys = {"day": "day", "channel_key": "channel_key", "domain": "domain"}
    _insert_grouped(TeamDomainRollup, tenant_id, keys | same, team)
    weeks = (
        TeamDomainRollup.objects.filter(tenant_id=tenant_id)
        .annotate(week=TruncWeek("day"))
        .values("week", "channel_key", "domain")
        .annotate(**sums)
        .order_by()
    )
    _insert_grouped(TeamDomainWeekRollup, tenant_id, keys | {"day": "week"} | same, weeks)
    by_template = {"domain": "to_domain", "day": "day", "template_key": "template_key"}
    _insert_grouped(
        DomainTemplateRollup,
        tenant_id,
        by_template | same,
        messages.values(*by_template.values()).annotate(**FIGURES),
    )
    reasons = (
        messages.filter(BOUNCED)
        .values(*by_template.values(), "bounce_reason", "bounce_hard")
        .annotate(n=Count("pk"))
    )
    _insert_grouped(
        DomainReasonRollup,
        tenant_id,
        by_template | {"reason": "bounce_reason", "hard": "bounce_hard", "count": "n"},
        reasons,
    )


def rebuild(
    tenant_ids: list[int],
    *,
    outcomes: Callable[[int], QuerySet[Any, Any]],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Recompute the roll-ups of these tenants from the raw tables, one tenant per transaction.
    ``outcomes(tenant_id)`` gives the tenant's sent mail as ``bounces.selectors.outcomes``
    does (the raw tables belong to the apps above this one). Each table is one ``INSERT …
    SELECT … GROUP BY`` (the database groups, nothing comes back to Python): 88 s per million
    messages through Python objects, a few seconds this way."""
    day = ("day", "sender_id", "channel_key")
    for done, tenant_id in enumerate(tenant_ids, 1):
        messages = outcomes(tenant_id)
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # The correlated look-ups of the first bounce make the planner's cost estimate
                # of a big tenant's grouping cross the JIT threshold: compiling took longer
                # (0.5 s a statement) than the grouping it was meant to speed up. A big
                # tenant's grouping sorts more than the default 4 MB: in memory, not on disk.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL jit = off")
                    cursor.execute("SET LOCAL work_mem = '64MB'")
            for model in ROLLUPS:
                model._default_manager.filter(tenant_id=tenant_id).delete()
            for table, columns in _SENT_AND_BOUNCED:
                rows = messages.values(*day, *columns.values()).annotate(**FIGURES)
                _insert_grouped(
                    table,
                    tenant_id,
                    {key: key for key in day} | columns | {count: count for count in _COUNTS},
                    rows,
                )
            reasons = (
                messages.filter(BOUNCED)
                .values(*day, "template_key", "bounce_reason", "bounce_hard")
                .annotate(n=Count("pk"))
            )
            _insert_grouped(
                ReasonRollup,
                tenant_id,
                {key: key for key in day}
                | {
                    "template_key": "template_key",
                    "reason": "bounce_reason",
                    "hard": "bounce_hard",
                    "count": "n",
                },
                reasons,
            )
            # The weeks from the days just written: the same sums, by construction.
            weeks = (
                DomainRollup.objects.filter(tenant_id=tenant_id)
                .annotate(week=TruncWeek("day"))
                .values("week", *day[1:], "domain")
                .annotate(**{count: Sum(count) for count in _COUNTS})
                .order_by()
            )
            _insert_grouped(
                DomainWeekRollup,
                tenant_id,
                {"day": "week", "sender_id": "sender_id", "channel_key": "channel_key"}
                | {"domain": "domain"}
                | {count: count for count in _COUNTS},
                weeks,
            )
            _rebuild_team(tenant_id, messages)
        if progress:
            progress(done)

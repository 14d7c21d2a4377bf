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
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncWeek
from django.utils import timezone

from analytics.models import (
    DomainReasonRollup,
    DomainRollup,
    DomainTemplateRollup,
    DomainWeekRollup,
    ReasonRollup,
    Rollup,
    TeamDomainRollup,
    TeamDomainWeekRollup,
    TeamReasonRollup,
    TeamReasonWeekRollup,
    TeamRollup,
    TeamWeekRollup,
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
# The team tables' keys: the sender's left out.
_TEAM_KEYS = ("tenant_id", "day", "template_key", "step_key", "channel_key")
_TEAM_REASON_KEYS = ("tenant_id", "day", "template_key", "channel_key", "reason", "hard")
_TEAM_DOMAIN_KEYS = ("tenant_id", "day", "channel_key", "domain")
# The team's rows by domain and template: the domain first, so one domain's range is one stretch.
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


def _summed(rows: list[tuple], width: int, key: Callable[[tuple], tuple]) -> list[tuple]:
    """Rows whose first ``width`` values are a key and the rest counts, summed by ``key`` of
    that key (one statement may not touch a row twice); sums of nothing left out."""
    found: dict[tuple, list[int]] = {}
    for row in rows:
        sums = found.setdefault(key(row[:width]), [0] * (len(row) - width))
        for n, value in enumerate(row[width:]):
            sums[n] += value
    return [(*k, *v) for k, v in found.items() if any(v)]


def _weekly(key: tuple) -> tuple:
    """A daily row's key as its week's (tenant first, day second in every table by day)."""
    return (key[0], week_of(key[1]), *key[2:])


def _teamwide(key: tuple) -> tuple:
    """A row's key by sender (tenant, day, sender, …) as its team row's: the sender left out."""
    return (key[0], key[1], *key[3:])


# Every writer bumps the tables in this order (``ROLLUPS``), each one's rows sorted
# (``_upsert``): Rollup, TeamRollup, TeamWeekRollup, DomainRollup, DomainWeekRollup,
# TeamDomainRollup, TeamDomainWeekRollup, DomainTemplateRollup, ReasonRollup, TeamReasonRollup,
# TeamReasonWeekRollup, DomainReasonRollup. Concurrent bumps then queue instead of deadlocking,
# and each team or weekly row stays the sum of the rows it sums.


def _upsert_rollups(rows: list[tuple]) -> None:
    """Bump the rows by sender, template, step and channel, then the team's rows (the sender
    left out) and their weeks' by the same amounts."""
    _upsert(Rollup, _ROLLUP_KEYS, _COUNTS, rows)
    team = _summed(rows, len(_ROLLUP_KEYS), _teamwide)
    _upsert(TeamRollup, _TEAM_KEYS, _COUNTS, team)
    _upsert(TeamWeekRollup, _TEAM_KEYS, _COUNTS, _summed(team, len(_TEAM_KEYS), _weekly))


def _upsert_domains(rows: list[tuple], templates: list[tuple]) -> None:
    """Bump the daily rows by domain, then their weeks' rows, the team's rows by domain (the
    senders summed) and the team's weeks' by the same amounts; then ``templates`` (rows keyed
    as ``DomainTemplateRollup``), the team's rows by domain and template."""
    _upsert(DomainRollup, _DOMAIN_KEYS, _COUNTS, rows)
    weeks = _summed(rows, len(_DOMAIN_KEYS), _weekly)
    _upsert(DomainWeekRollup, _DOMAIN_KEYS, _COUNTS, weeks)
    team = _summed(rows, len(_DOMAIN_KEYS), _teamwide)
    _upsert(TeamDomainRollup, _TEAM_DOMAIN_KEYS, _COUNTS, team)
    team_weeks = _summed(team, len(_TEAM_DOMAIN_KEYS), _weekly)
    _upsert(TeamDomainWeekRollup, _TEAM_DOMAIN_KEYS, _COUNTS, team_weeks)
    _upsert(DomainTemplateRollup, _DOMAIN_TEMPLATE_KEYS, _COUNTS, templates)


def _upsert_reasons(rows: list[tuple], domains: list[tuple]) -> None:
    """Bump the bounces by reason and sender, then the team's by day and by week; then
    ``domains`` (rows keyed as ``DomainReasonRollup``), the team's by domain and template."""
    _upsert(ReasonRollup, _REASON_KEYS, ("count",), rows)
    team = _summed(rows, len(_REASON_KEYS), _teamwide)
    _upsert(TeamReasonRollup, _TEAM_REASON_KEYS, ("count",), team)
    weeks = _summed(team, len(_TEAM_REASON_KEYS), _weekly)
    _upsert(TeamReasonWeekRollup, _TEAM_REASON_KEYS, ("count",), weeks)
    _upsert(DomainReasonRollup, _DOMAIN_REASON_KEYS, ("count",), domains)


def count_sent(message: Sent, sent_at: datetime) -> None:
    key = _rollup_key(message, sent_at)
    _upsert_rollups([(*key, 1, 0, 0, 0, 0)])
    _upsert_domains(
        [(*_domain_key(message, key), 1, 0, 0, 0, 0)],
        [(*_domain_template_key(message, key), 1, 0, 0, 0, 0)],
    )


def count_sent_after(message: Sent, sent_at: datetime, source: str) -> list[tuple[str, str, list]]:
    """``count_sent`` as ``INSERT … SELECT … FROM source ON CONFLICT …`` statements (each a
    name, its SQL and parameters), for a caller that records the send in the same statement:
    ``WITH`` queries named so, where ``source`` names the row it marked sent, so the bumps
    happen only if that row was, and all of it commits at once (PostgreSQL). Each reads the row
    the one before it wrote (``RETURNING``): PostgreSQL runs the ``WITH`` queries nothing reads
    in an order of its own (the last first, on 15), and this makes it the writers' order of
    tables. The team's rows take their keys from the row by sender just written (those by domain
    from the sender's week by domain, with their day as a parameter), not from parameters (the
    rows by domain and template take theirs as parameters): each parameter cost the sender's
    process about 5 µs a send (psycopg's dumping), 20 more parameters a third more of its CPU
    for the statement."""
    key = _rollup_key(message, sent_at)
    counts = (1, 0, 0, 0, 0)
    domain = (*_domain_key(message, key), *counts)
    team_keys = ", ".join(_TEAM_KEYS)
    week = ("%s AS day", [week_of(key[1])])
    # The team's rows by domain: their keys from the sender's week just written, the day's as
    # a parameter (the week's row holds the Monday).
    by_domain = "tenant_id, channel_key, domain"
    day = ("%s AS day", [key[1]])
    template = (*_domain_template_key(message, key), *counts)
    return [
        ("rollup", *_upsert_from(Rollup, _ROLLUP_KEYS, (*key, *counts), source, team_keys)),
        ("team", *_upsert_keyed(TeamRollup, _TEAM_KEYS, counts, "rollup", team_keys)),
        ("team_week", *_upsert_keyed(TeamWeekRollup, _TEAM_KEYS, counts, "team", "1", week)),
        ("domain", *_upsert_from(DomainRollup, _DOMAIN_KEYS, domain, "team_week", "1")),
        (
            "domain_week",
            *_upsert_from(DomainWeekRollup, _DOMAIN_KEYS, _weekly(domain), "domain", by_domain),
        ),
        (
            "team_domain",
            *_upsert_keyed(
                TeamDomainRollup, _TEAM_DOMAIN_KEYS, counts, "domain_week", by_domain, day
            ),
        ),
        (
            "team_domain_week",
            *_upsert_keyed(
                TeamDomainWeekRollup, _TEAM_DOMAIN_KEYS, counts, "team_domain", "1", week
            ),
        ),
        (
            "domain_template",
            *_upsert_from(
                DomainTemplateRollup, _DOMAIN_TEMPLATE_KEYS, template, "team_domain_week"
            ),
        ),
    ]


def _upsert_from(
    model: type[models.Model],
    keys: tuple[str, ...],
    row: tuple,
    source: str,
    returning: str = "1",
) -> tuple[str, list]:
    table = model._meta.db_table
    columns = (*keys, *_COUNTS)
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in _COUNTS)
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - our own names
        f"SELECT {', '.join(['%s'] * len(columns))} FROM {source} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets} RETURNING {returning}"
    )
    return sql, list(row)


def _upsert_keyed(
    model: type[models.Model],
    keys: tuple[str, ...],
    counts: tuple[int, ...],
    source: str,
    returning: str,
    day: tuple[str, list] = ("day", []),
) -> tuple[str, list]:
    """``_upsert_from`` whose keys are the columns ``source`` returned (``day`` may be given
    as SQL and its parameters) and whose counts are constants, written into the SQL: a send
    always counts the same, so the prepared statement is the same."""
    table = model._meta.db_table
    sets = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in _COUNTS)
    values = [day[0] if k == "day" else k for k in keys] + [str(int(n)) for n in counts]
    sql = (
        f"INSERT INTO {table} ({', '.join((*keys, *_COUNTS))}) "  # noqa: S608 - our own names
        f"SELECT {', '.join(values)} FROM {source} "
        f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets} RETURNING {returning}"
    )
    return sql, list(day[1])


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
    _upsert_rollups([(*k, 0, h, s, 0, 0) for k, (h, s) in _merged(totals, True).items() if h or s])
    _upsert_domains(
        [(*k, 0, h, s, 0, 0) for k, (h, s) in _merged(domains, True).items() if h or s],
        [(*k, 0, h, s, 0, 0) for k, (h, s) in _merged(templates, True).items() if h or s],
    )
    _upsert_reasons(
        [(*key, n) for key, n in reasons.items() if n],
        [(*key, n) for key, n in domain_reasons.items() if n],
    )
    if any(n < 0 for n in reasons.values()):
        # A reason taken back to nothing is no row at all, as after a rebuild: in every table
        # of reasons, in the writers' order.
        tenants = {key[0] for key in reasons}
        for model in (ReasonRollup, TeamReasonRollup, TeamReasonWeekRollup, DomainReasonRollup):
            model._default_manager.filter(tenant_id__in=tenants, count=0).delete()


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
    _upsert_rollups([(*k, 0, 0, 0, c, r) for k, (c, r) in _merged(totals, COMPLAINED).items()])
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

# Every roll-up table, in the order every writer bumps them: ``rebuild`` deletes and writes them
# in it too. Each table summed from another's rows comes after that one.
ROLLUPS: tuple[type[models.Model], ...] = (
    Rollup,
    TeamRollup,
    TeamWeekRollup,
    DomainRollup,
    DomainWeekRollup,
    TeamDomainRollup,
    TeamDomainWeekRollup,
    DomainTemplateRollup,
    ReasonRollup,
    TeamReasonRollup,
    TeamReasonWeekRollup,
    DomainReasonRollup,
)
# The tables counted from the raw rows, each with the column of the outcomes filling each of its
# keys, and whether it counts bounces by reason (``count``) rather than the figures.
_BY_SENDER = {"day": "day", "sender_id": "sender_id", "channel_key": "channel_key"}
_BY_DOMAIN_TEMPLATE = {"domain": "to_domain", "day": "day", "template_key": "template_key"}
_BY_REASON = {"reason": "bounce_reason", "hard": "bounce_hard"}
_COUNTED: dict[type[models.Model], tuple[dict[str, str], bool]] = {
    Rollup: (_BY_SENDER | {"template_key": "template_key", "step_key": "step_key"}, False),
    DomainRollup: (_BY_SENDER | {"domain": "to_domain"}, False),
    DomainTemplateRollup: (_BY_DOMAIN_TEMPLATE, False),
    ReasonRollup: (_BY_SENDER | {"template_key": "template_key"} | _BY_REASON, True),
    DomainReasonRollup: (_BY_DOMAIN_TEMPLATE | _BY_REASON, True),
}
_TEAM_FIELDS = _TEAM_KEYS[2:]
_TEAM_REASON_FIELDS = _TEAM_REASON_KEYS[2:]
_TEAM_DOMAIN_FIELDS = _TEAM_DOMAIN_KEYS[2:]
# The tables summed from another's rows (``table: (source, by week, keys, counts)``): by day or
# by week, and then by these keys (the team's rows without the sender).
_SUMMED: dict[type[models.Model], tuple[type[models.Model], bool, tuple[str, ...], tuple]] = {
    TeamRollup: (Rollup, False, _TEAM_FIELDS, _COUNTS),
    TeamWeekRollup: (TeamRollup, True, _TEAM_FIELDS, _COUNTS),
    DomainWeekRollup: (DomainRollup, True, _DOMAIN_KEYS[2:], _COUNTS),
    TeamDomainRollup: (DomainRollup, False, _TEAM_DOMAIN_FIELDS, _COUNTS),
    TeamDomainWeekRollup: (TeamDomainRollup, True, _TEAM_DOMAIN_FIELDS, _COUNTS),
    TeamReasonRollup: (ReasonRollup, False, _TEAM_REASON_FIELDS, ("count",)),
    TeamReasonWeekRollup: (TeamReasonRollup, True, _TEAM_REASON_FIELDS, ("count",)),
}


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


def _insert_counted(
    model: type[models.Model], tenant_id: int, messages: QuerySet[Any, Any]
) -> None:
    """One table of the tenant's roll-ups grouped from its sent mail (``_COUNTED``)."""
    columns, by_reason = _COUNTED[model]
    if by_reason:
        rows = messages.filter(BOUNCED).values(*columns.values()).annotate(n=Count("pk"))
        _insert_grouped(model, tenant_id, columns | {"count": "n"}, rows)
    else:
        rows = messages.values(*columns.values()).annotate(**FIGURES)
        _insert_grouped(model, tenant_id, columns | {c: c for c in _COUNTS}, rows)


def _insert_summed(model: type[models.Model], tenant_id: int) -> None:
    """One table of the tenant's roll-ups summed from the rows of another just written
    (``_SUMMED``): the same sums, by construction."""
    source, week, keys, counts = _SUMMED[model]
    rows = (
        source._default_manager.filter(tenant_id=tenant_id)
        .annotate(when=TruncWeek("day") if week else F("day"))
        .values("when", *keys)
        .annotate(**{count: Sum(count) for count in counts})
        .order_by()
    )
    _insert_grouped(
        model, tenant_id, {"day": "when"} | {key: key for key in (*keys, *counts)}, rows
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
    messages through Python objects, a few seconds this way. The tables go in the order of
    ``ROLLUPS``, each summed table after the one it sums."""
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
            for model in ROLLUPS:
                if model in _SUMMED:
                    _insert_summed(model, tenant_id)
                else:
                    _insert_counted(model, tenant_id, messages)
        if progress:
            progress(done)

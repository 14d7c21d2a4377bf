"""Throttling and provider limits, enforced with shared atomic counters in the database.

Each rule is a window of ``seconds`` that admits ``limit`` sends. A reservation takes one slot
in every rule of the channel inside one transaction: the row lock of each rule serialises every
worker on every machine, and a full rule rolls the others back, so a message either takes a slot
in all of its rules or in none.

Three kinds of window:
- *batch* windows (the admin's "25 emails every 45 seconds") start with the first send of a batch;
- *aligned* windows (per second, per minute, per UTC day) start at multiples of their length;
- *rolling* windows (Gmail's and Exchange Online's daily limits, custom SMTP limits) are the
  last ``seconds`` before each send, as those providers count: a send frees its slot exactly
  ``seconds`` after it took it, not at midnight.

Batch and aligned windows are one ``INSERT … ON CONFLICT DO UPDATE … WHERE used < limit
RETURNING`` counter each. A rolling window keeps one ``QuotaSlot`` row per send inside it, and
its counter row (locked first, so every worker on every machine takes its turn) counts them:
slots that have left the window are deleted and subtracted, and while the count is below the
limit the new slot is inserted and counted, a few index entries whatever the window holds. Only
a count at the limit reads the slots: recounted (a count left too high, as by the aligned
counter a rule had before, heals here) and, if full, the ``limit``-th newest says when it frees
(``seconds`` after it was taken). A slot given back is deleted and subtracted under the same
lock. Exact under concurrency; ``bench.sending`` measures the cost. A limit set or changed
(``channels.signals.limits_changed``) has its windows count the channel's sends from before it
was in force (``windows_recount``).

Email Connection channels get the team's throttling and the provider's own ``kind.limits``; other
kinds only their own ``kind.limits`` (the limits an admin set on a custom SMTP channel).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Count, Min, Q
from django.utils.translation import ngettext

from channels.kinds import Rule
from channels.models import Channel, TeamSendingSettings
from msc_admin import bulk
from sending.models import Message, QuotaSlot, QuotaWindow


@dataclass(frozen=True)
class Held:
    rule: Rule
    until: float  # unix time the rule next admits a send

    @property
    def until_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.until, tz=UTC)


def rules_for(channel: Channel, team: TeamSendingSettings | None) -> list[Rule]:
    kind = channel.kind_spec
    rules = []
    if kind.email_connection and team is not None and team.throttling_enabled:
        rules.append(
            Rule(
                "batch",
                team.batch_size,
                team.wait_seconds,
                False,
                ngettext(
                    "Team throttling: %(n)s email every %(seconds)s s",
                    "Team throttling: %(n)s emails every %(seconds)s s",
                    team.batch_size,
                )
                % {"n": team.batch_size, "seconds": team.wait_seconds},
            )
        )
    return rules + kind.limits(channel)


_RESERVE = """
INSERT INTO sending_quotawindow AS q (channel_id, rule, window_start, used)
VALUES (%(channel)s, %(rule)s, %(start)s, 1)
ON CONFLICT (channel_id, rule) DO UPDATE SET
    window_start = CASE WHEN q.window_start + %(seconds)s <= %(now)s
                        THEN excluded.window_start ELSE q.window_start END,
    used = CASE WHEN q.window_start + %(seconds)s <= %(now)s THEN 1 ELSE q.used + 1 END
WHERE q.window_start + %(seconds)s <= %(now)s OR q.used < %(limit)s
RETURNING window_start
"""

# A rolling rule's counter row is its lock and counts its slots (``window_start`` is the last
# reservation's time): every worker reserving in this rule waits here until the one before it
# commits.
_LOCK_ROLLING = """
INSERT INTO sending_quotawindow AS q (channel_id, rule, window_start, used)
VALUES (%(channel)s, %(rule)s, %(now)s, 0)
ON CONFLICT (channel_id, rule) DO UPDATE SET window_start = excluded.window_start
RETURNING used
"""
_COUNTED = "UPDATE sending_quotawindow SET used = %s WHERE channel_id = %s AND rule = %s"
_PRUNE = "DELETE FROM sending_quotaslot WHERE channel_id = %s AND rule = %s AND at <= %s"
_COUNT = "SELECT count(*) FROM sending_quotaslot WHERE channel_id = %s AND rule = %s AND at > %s"
# The limit-th newest slot still in the window: if there is one, the window is full.
_LIMIT_TH = (
    "SELECT at FROM sending_quotaslot WHERE channel_id = %s AND rule = %s AND at > %s "
    "ORDER BY at DESC LIMIT 1 OFFSET %s"
)
_TAKE = "INSERT INTO sending_quotaslot (channel_id, rule, at) VALUES (%s, %s, %s) RETURNING id"


class _Full(Exception):
    def __init__(self, held: Held) -> None:
        self.held = held


@dataclass(frozen=True)
class Reservation:
    channel_id: int
    slots: tuple[tuple[str, float], ...]  # (rule, window_start) taken in counters
    rolling: tuple[tuple[str, int], ...] = ()  # (rule, QuotaSlot id) taken in rolling windows


def _reserve_counter(cursor: CursorWrapper, channel_id: int, rule: Rule, now: float) -> float:
    params: dict[str, int | float | str] = {
        "channel": channel_id,
        "rule": rule.name,
        "start": rule.window_start(now),
        "seconds": rule.seconds,
        "now": now,
        "limit": rule.limit,
    }
    cursor.execute(_RESERVE, params)
    row = cursor.fetchone()
    if row is None:
        cursor.execute(
            "SELECT window_start FROM sending_quotawindow WHERE channel_id = %s AND rule = %s",
            [channel_id, rule.name],
        )
        (start,) = cursor.fetchone()
        raise _Full(Held(rule, float(start) + rule.seconds))
    return float(row[0])


def _reserve_rolling(cursor: CursorWrapper, channel_id: int, rule: Rule, now: float) -> int:
    cursor.execute(_LOCK_ROLLING, {"channel": channel_id, "rule": rule.name, "now": now})
    (counted,) = cursor.fetchone()
    cutoff = now - rule.seconds
    cursor.execute(_PRUNE, [channel_id, rule.name, cutoff])
    inside = max(counted - cursor.rowcount, 0)
    if inside >= rule.limit:  # full by the count: make sure, and say when it frees
        cursor.execute(_COUNT, [channel_id, rule.name, cutoff])
        (inside,) = cursor.fetchone()
        if inside >= rule.limit:
            cursor.execute(_LIMIT_TH, [channel_id, rule.name, cutoff, rule.limit - 1])
            (oldest,) = cursor.fetchone()
            raise _Full(Held(rule, float(oldest) + rule.seconds))
    cursor.execute(_TAKE, [channel_id, rule.name, now])
    (slot,) = cursor.fetchone()
    cursor.execute(_COUNTED, [inside + 1, channel_id, rule.name])
    return int(slot)


def reserve(channel: Channel, rules: list[Rule], now: float | None = None) -> Reservation | Held:
    """One slot in every rule, or none; ``Held`` names the first full rule and when it frees."""
    if not rules:
        return Reservation(channel.pk, ())
    now = time.time() if now is None else now
    taken: list[tuple[str, float]] = []
    slots: list[tuple[str, int]] = []
    try:
        # Prepared once per connection: every send of a limited channel runs these.
        with transaction.atomic(), bulk.statement_cursor() as cursor:
            for rule in rules:
                if rule.rolling:
                    slots.append((rule.name, _reserve_rolling(cursor, channel.pk, rule, now)))
                else:
                    taken.append((rule.name, _reserve_counter(cursor, channel.pk, rule, now)))
    except _Full as full:
        return full.held
    return Reservation(channel.pk, tuple(taken), tuple(slots))


def release(reservation: Reservation) -> None:
    """Give the slots back (the message never reached the server)."""
    with transaction.atomic(), connection.cursor() as cursor:
        for rule, start in reservation.slots:
            cursor.execute(
                "UPDATE sending_quotawindow SET used = used - 1 "
                "WHERE channel_id = %s AND rule = %s AND window_start = %s AND used > 0",
                [reservation.channel_id, rule, start],
            )
        # In the order they were taken, each under its counter's lock (as reservations do).
        for rule, slot in reservation.rolling:
            cursor.execute(
                "SELECT used FROM sending_quotawindow WHERE channel_id = %s AND rule = %s "
                "FOR UPDATE",
                [reservation.channel_id, rule],
            )
            cursor.execute("DELETE FROM sending_quotaslot WHERE id = %s", [slot])
            if cursor.rowcount:  # not already pruned by a later reservation
                cursor.execute(
                    "UPDATE sending_quotawindow SET used = used - 1 "
                    "WHERE channel_id = %s AND rule = %s AND used > 0",
                    [reservation.channel_id, rule],
                )


_FIRST = "SELECT min(at) FROM sending_quotaslot WHERE channel_id = %s AND rule = %s AND at > %s"


def windows_recount(channel: Channel, now: float | None = None) -> int:
    """A limit of the channel was set or changed: each rolling window counts the mail actually
    sent through the channel in it. Returns how many sends it had not counted.

    A window holds a slot for every send since its rule came into force. The sends before that
    (a 24-hour limit set at noon on a channel that sent all morning) take their slots now, at
    the time they were sent; a send after the window's first slot has its own already (and a
    slot taken but not yet sent, in flight, is kept). The slots of a rolling rule no longer in
    force are forgotten, so that a limit set again later counts the sends in between too. Under
    each counter's lock, as reservations take them."""
    now = time.time() if now is None else now
    windows = [rule for rule in channel.kind_spec.limits(channel) if rule.rolling]
    added = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for rule in windows:
            cursor.execute(_LOCK_ROLLING, {"channel": channel.pk, "rule": rule.name, "now": now})
            cutoff = now - rule.seconds
            cursor.execute(_PRUNE, [channel.pk, rule.name, cutoff])
            cursor.execute(_FIRST, [channel.pk, rule.name, cutoff])
            (first,) = cursor.fetchone()
            sent = Message.objects.filter(
                channel_id=channel.pk, sent_at__gt=datetime.fromtimestamp(cutoff, UTC)
            )
            if first is not None:
                sent = sent.filter(sent_at__lt=datetime.fromtimestamp(first, UTC))
            missing = [
                QuotaSlot(channel_id=channel.pk, rule=rule.name, at=at.timestamp())
                for at in sent.order_by().values_list("sent_at", flat=True)
            ]
            QuotaSlot.objects.bulk_create(missing)
            added += len(missing)
            cursor.execute(_COUNT, [channel.pk, rule.name, cutoff])
            (inside,) = cursor.fetchone()
            cursor.execute(_COUNTED, [inside, channel.pk, rule.name])
        gone = QuotaSlot.objects.filter(channel_id=channel.pk).exclude(
            rule__in=[rule.name for rule in windows]
        )
        names = set(gone.values_list("rule", flat=True).distinct())
        if names:
            gone.delete()
            QuotaWindow.objects.filter(channel_id=channel.pk, rule__in=names).delete()
    return added


def frees_at(channel: Channel, rules: list[Rule], now: float | None = None) -> datetime | None:
    """When the channel's longest rolling window next frees a slot: the oldest send in it turns
    the window's age. None without a rolling rule or without a send in it."""
    windows = [rule for rule in rules if rule.rolling]
    if not windows:
        return None
    now = time.time() if now is None else now
    rule = max(windows, key=lambda r: r.seconds)
    oldest = QuotaSlot.objects.filter(
        channel_id=channel.pk, rule=rule.name, at__gt=now - rule.seconds
    ).aggregate(oldest=Min("at"))["oldest"]
    return None if oldest is None else datetime.fromtimestamp(oldest + rule.seconds, UTC)


@dataclass(frozen=True)
class Usage:
    rule: Rule
    used: int
    resets_at: datetime | None  # for a rolling rule: when its oldest send frees its slot

    @property
    def headroom(self) -> int:
        return max(self.rule.limit - self.used, 0)


def usage(channel: Channel, rules: list[Rule], now: float | None = None) -> list[Usage]:
    """Each rule's count in its current window (0 when the window has passed)."""
    now = time.time() if now is None else now
    rows = {
        rule: (start, used)
        for rule, start, used in QuotaWindow.objects.filter(channel_id=channel.pk).values_list(
            "rule", "window_start", "used"
        )
    }
    rolling = _rolling_counts(channel, [rule for rule in rules if rule.rolling], now)
    result = []
    for rule in rules:
        if rule.rolling:
            used, oldest = rolling[rule.name]
            resets = None if oldest is None else datetime.fromtimestamp(oldest + rule.seconds, UTC)
            result.append(Usage(rule, used, resets))
            continue
        row = rows.get(rule.name)
        if row is not None and row[0] + rule.seconds > now:
            resets = datetime.fromtimestamp(row[0] + rule.seconds, UTC)
            result.append(Usage(rule, row[1], resets))
        else:
            result.append(Usage(rule, 0, None))
    return result


def _rolling_counts(
    channel: Channel, rules: list[Rule], now: float
) -> dict[str, tuple[int, float | None]]:
    """Each rolling rule's sends in its window and the oldest of them, in one query."""
    if not rules:
        return {}
    aggregates: dict[str, Count | Min] = {}
    for n, rule in enumerate(rules):
        inside = Q(rule=rule.name, at__gt=now - rule.seconds)
        aggregates[f"n{n}"] = Count("pk", filter=inside)
        aggregates[f"o{n}"] = Min("at", filter=inside)
    found = QuotaSlot.objects.filter(channel_id=channel.pk).aggregate(**aggregates)
    return {rule.name: (found[f"n{n}"], found[f"o{n}"]) for n, rule in enumerate(rules)}

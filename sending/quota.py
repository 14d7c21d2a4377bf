"""Throttling and provider limits, enforced with shared atomic counters in the database.

Each rule is a window of ``seconds`` that admits ``limit`` sends. A reservation is one
``INSERT … ON CONFLICT DO UPDATE … WHERE used < limit RETURNING`` per rule, inside one
transaction: the row lock serialises every worker on every machine, and a full rule rolls the
others back, so a message either takes a slot in all of its rules or in none.

Two kinds of window:
- *batch* windows (the admin's "25 emails every 45 seconds") start with the first send of a batch;
- *aligned* windows (per second, per minute, per UTC day) start at multiples of their length.

Only Email Connection channels are limited (``kind.email_connection``, with the provider's own
``kind.limits``); custom SMTP and MSC servers never are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction
from django.template.defaultfilters import pluralize

from channels.kinds import Rule
from channels.models import Channel, TeamSendingSettings
from sending.models import QuotaWindow


@dataclass(frozen=True)
class Held:
    rule: Rule
    until: float  # unix time the rule next admits a send

    @property
    def until_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.until, tz=UTC)


def rules_for(channel: Channel, team: TeamSendingSettings | None) -> list[Rule]:
    kind = channel.kind_spec
    if not kind.email_connection:
        return []
    rules = []
    if team is not None and team.throttling_enabled:
        rules.append(
            Rule(
                "batch",
                team.batch_size,
                team.wait_seconds,
                False,
                f"Team throttling: {team.batch_size} email{pluralize(team.batch_size)} "
                f"every {team.wait_seconds} s",
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


class _Full(Exception):
    def __init__(self, held: Held) -> None:
        self.held = held


@dataclass(frozen=True)
class Reservation:
    channel_id: int
    slots: tuple[tuple[str, float], ...]  # (rule, window_start) taken


def reserve(channel: Channel, rules: list[Rule], now: float | None = None) -> Reservation | Held:
    """One slot in every rule, or none; ``Held`` names the first full rule and when it frees."""
    if not rules:
        return Reservation(channel.pk, ())
    now = time.time() if now is None else now
    taken: list[tuple[str, float]] = []
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            for rule in rules:
                cursor.execute(
                    _RESERVE,
                    {
                        "channel": channel.pk,
                        "rule": rule.name,
                        "start": rule.window_start(now),
                        "seconds": rule.seconds,
                        "now": now,
                        "limit": rule.limit,
                    },
                )
                row = cursor.fetchone()
                if row is None:
                    cursor.execute(
                        "SELECT window_start FROM sending_quotawindow "
                        "WHERE channel_id = %s AND rule = %s",
                        [channel.pk, rule.name],
                    )
                    (start,) = cursor.fetchone()
                    raise _Full(Held(rule, float(start) + rule.seconds))
                taken.append((rule.name, float(row[0])))
    except _Full as full:
        return full.held
    return Reservation(channel.pk, tuple(taken))


def release(reservation: Reservation) -> None:
    """Give the slots back (the message never reached the server)."""
    with connection.cursor() as cursor:
        for rule, start in reservation.slots:
            cursor.execute(
                "UPDATE sending_quotawindow SET used = used - 1 "
                "WHERE channel_id = %s AND rule = %s AND window_start = %s AND used > 0",
                [reservation.channel_id, rule, start],
            )


@dataclass(frozen=True)
class Usage:
    rule: Rule
    used: int
    resets_at: datetime | None

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
    result = []
    for rule in rules:
        row = rows.get(rule.name)
        if row is not None and row[0] + rule.seconds > now:
            resets = datetime.fromtimestamp(row[0] + rule.seconds, UTC)
            result.append(Usage(rule, row[1], resets))
        else:
            result.append(Usage(rule, 0, None))
    return result

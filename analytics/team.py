"""A range of days of the team's roll-ups (``TeamRollup``, ``TeamReasonRollup``: no sender),
read a week at a time where it can, as ``analytics.domains`` reads the roll-ups by domain.

The team's pages group all of a team's mail over a range: by template, campaign step, reason.
The rows by sender hold a row per sender of each day, template, step and channel (a team of 20
reps: up to 20 times the rows for the same sums); the team's rows hold one, and their weeks'
rows one a week. A range reads its whole weeks from the weekly rows and its ragged ends from
the daily ones (``analytics.domains.pieces``); the sums are exactly those of the rows by sender,
which every writer keeps so (``analytics.rollups``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db import connection
from django.utils import timezone

from analytics.domains import pieces
from analytics.models import TeamReasonRollup, TeamReasonWeekRollup, TeamRollup, TeamWeekRollup

FIGURES = ("sent", "hard", "soft", "complained", "replied")
# Each kind of row: its daily and weekly tables, the columns it may be grouped by, its figures.
_TABLES = {
    "mail": (
        TeamRollup._meta.db_table,
        TeamWeekRollup._meta.db_table,
        ("template_key", "step_key", "channel_key"),
        FIGURES,
    ),
    "reasons": (
        TeamReasonRollup._meta.db_table,
        TeamReasonWeekRollup._meta.db_table,
        ("template_key", "channel_key", "reason", "hard"),
        ("count",),
    ),
}


@dataclass(frozen=True)
class TeamRange:
    """A tenant's mail over [start, end], optionally through one channel, optionally only
    some campaign steps'."""

    tenant_id: int
    start: date
    end: date
    channel_key: int | None = None
    step_keys: tuple[int, ...] | None = None

    def _rows(self, kind: str) -> tuple[str, list[Any]]:
        """SQL of a derived table (the kind's keys and figures, signed) whose sums equal those of
        the daily rows in range, and its parameters."""
        daily, weekly, keys, counts = _TABLES[kind]
        where: list[str] = ["tenant_id = %s"]
        params: list[Any] = [self.tenant_id]
        if self.channel_key is not None:
            where.append("channel_key = %s")
            params.append(self.channel_key)
        if self.step_keys is not None:
            chosen = list(self.step_keys)
            where.append(f"step_key IN ({', '.join(['%s'] * len(chosen))})" if chosen else "false")
            params += chosen
        branches: list[str] = []
        values: list[Any] = []
        found = pieces(self.start, self.end, timezone.localdate(), daily=daily, weekly=weekly)
        for piece in found:
            sign = "" if piece.sign > 0 else "-"
            figures = ", ".join(f"{sign}{name} AS {name}" for name in counts)
            branches.append(
                f"SELECT {', '.join(keys)}, {figures} "  # noqa: S608 - our names
                f"FROM {piece.table} WHERE {' AND '.join(where)} AND day BETWEEN %s AND %s"
            )
            values += [*params, piece.first, piece.last]
        if not branches:  # an empty range
            columns = ", ".join((*keys, *counts))
            return f"SELECT {columns} FROM {daily} WHERE false", []  # noqa: S608 - our names
        return " UNION ALL ".join(branches), values

    def figures(self, *by: str) -> list[dict[str, Any]]:
        """Sent, hard, soft, complained and replied grouped by ``by`` (``template_key``,
        ``step_key``, ``channel_key``), the groups that have any."""
        return self._grouped("mail", by, FIGURES)

    def reasons(self, *by: str, top: int | None = None) -> list[dict[str, Any]]:
        """Bounces (``n``) grouped by ``by`` (``template_key``, ``reason``, ``hard``), the groups
        that have any; ``top``: only that many, the most bounces first (then by ``by``)."""
        return self._grouped("reasons", by, ("count",), top=top)

    def _grouped(
        self, kind: str, by: tuple[str, ...], counts: tuple[str, ...], *, top: int | None = None
    ) -> list[dict[str, Any]]:
        rows, params = self._rows(kind)
        names = {"count": "n"}
        sums = ", ".join(f"SUM({c}) AS {names.get(c, c)}" for c in counts)
        sql = (
            f"SELECT {', '.join(by)}, {sums} FROM ({rows}) r "  # noqa: S608 - our names
            f"GROUP BY {', '.join(by)} HAVING {' OR '.join(f'SUM({c}) <> 0' for c in counts)}"
        )
        if top is not None:
            sql += f" ORDER BY n DESC, {', '.join(by)} LIMIT %s"
            params = [*params, top]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            columns = [*by, *(names.get(c, c) for c in counts)]
            return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

"""The team roll-ups' one invariant, for every test that moves figures: each team row (by day
and by week) is exactly the sum of the rows by sender it stands for (``analytics.rollups``)."""

from __future__ import annotations

from accounts.models import Tenant
from analytics import rollups
from analytics.models import (
    ReasonRollup,
    Rollup,
    TeamReasonRollup,
    TeamReasonWeekRollup,
    TeamRollup,
    TeamWeekRollup,
)

FIGURES = ("sent", "hard", "soft", "complained", "replied")
TEAM_KEY = ("day", "template_key", "step_key", "channel_key")
REASON_KEY = ("day", "template_key", "channel_key", "reason", "hard")


def _summed(rows: list[tuple], width: int, weekly: bool) -> set[tuple]:
    found: dict[tuple, list[int]] = {}
    for row in rows:
        key = (rollups.week_of(row[0]) if weekly else row[0], *row[1:width])
        sums = found.setdefault(key, [0] * (len(row) - width))
        for n, value in enumerate(row[width:]):
            sums[n] += value
    return {(*key, *sums) for key, sums in found.items() if any(sums)}


def _kept(model: type, tenant: Tenant, key: tuple[str, ...], counts: tuple[str, ...]) -> set:
    rows = model.objects.filter(tenant=tenant).values_list(*key, *counts)
    return {row for row in rows if any(row[len(key) :])}


def assert_team_rows_sum_the_senders(tenant: Tenant, *, some: bool = True) -> None:
    """Every team row, daily and weekly, equals the sum of its senders' rows (rows of nothing,
    which "not a bounce" may leave, aside); ``some``: and there is something to compare."""
    by_sender = list(Rollup.objects.filter(tenant=tenant).values_list(*TEAM_KEY, *FIGURES))
    assert by_sender or not some, "no roll-ups to compare"
    for model, weekly in ((TeamRollup, False), (TeamWeekRollup, True)):
        assert _kept(model, tenant, TEAM_KEY, FIGURES) == _summed(
            by_sender, len(TEAM_KEY), weekly
        ), model.__name__
    reasons = list(ReasonRollup.objects.filter(tenant=tenant).values_list(*REASON_KEY, "count"))
    for model, weekly in ((TeamReasonRollup, False), (TeamReasonWeekRollup, True)):
        assert _kept(model, tenant, REASON_KEY, ("count",)) == _summed(
            reasons, len(REASON_KEY), weekly
        ), model.__name__
    # A reason taken back to nothing leaves no row, by sender or for the team.
    assert not TeamReasonRollup.objects.filter(tenant=tenant, count=0).exists()
    assert not TeamReasonWeekRollup.objects.filter(tenant=tenant, count=0).exists()

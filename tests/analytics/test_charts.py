"""The campaign step chart: every bar carries its figures, on an axis that ends on a round
number (its ticks in the page's language)."""

from __future__ import annotations

from django.utils import translation

from reports.charts import nice_top, step_chart
from reports.selectors import StepLine


def test_the_axis_ends_on_a_round_number_at_or_above_the_top() -> None:
    values = [0, 1, 3, 7, 10, 12, 240, 1001]
    assert [nice_top(v) for v in values] == [1, 1, 5, 10, 10, 20, 500, 2000]


def test_each_step_bar_carries_its_figures_on_the_shared_axis() -> None:
    chart = step_chart(
        [
            StepLine(position=1, template="Opener", sent=1204, hard=150, soft=50),
            StepLine(position=2, template="Nudge", sent=500, hard=0, soft=0),
        ]
    )
    first, second = chart.bars
    assert (first.position, first.template, first.sent, first.bounced) == (
        1,
        "Opener",
        "1,204",
        "200",
    )
    # The axis ends at 2,000: each bar is its share of it, the bounced part over the sent one.
    assert (first.sent_width, first.bounced_width) == ("60.2", "10.0")
    assert (second.sent_width, second.bounced_width) == ("25.0", "0.0")
    assert chart.ticks == ["0", "1,000", "2,000"]


def test_the_figures_are_written_in_the_active_language() -> None:
    with translation.override("pt-br"):
        chart = step_chart([StepLine(position=1, template="Opener", sent=1204, hard=1, soft=0)])
    assert chart.bars[0].sent == "1.204"
    assert chart.ticks == ["0", "1.000", "2.000"]

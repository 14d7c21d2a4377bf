"""Times in words: "just now", never "0 minutes ago"; a date once it is weeks old."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template

from msc_admin.humanize import ago

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("before", "words"),
    [
        (timedelta(seconds=0), "just now"),
        (timedelta(seconds=59), "just now"),
        (timedelta(seconds=-30), "just now"),  # a clock a little ahead of ours
        (timedelta(seconds=60), "1 minute ago"),
        (timedelta(minutes=3, seconds=20), "3 minutes ago"),
        (timedelta(hours=5, minutes=40), "5 hours ago"),
        (timedelta(days=1, hours=2), "1 day ago"),
        (timedelta(days=20), "20 days ago"),
        (timedelta(days=60), "Sep 30, 2026"),
    ],
)
def test_ago_says_how_long_ago_in_words(before: timedelta, words: str) -> None:
    assert ago(NOW - before, NOW) == words


def test_every_template_has_the_filter_and_it_ignores_non_dates() -> None:
    template = Template("{{ when|ago }}|{{ missing|ago }}")
    assert template.render(Context({"when": datetime.now(UTC)})) == "just now|"


def test_rates_and_counts_are_written_one_way() -> None:
    from msc_admin.humanize import number, percent

    assert percent(1, 3) == "33.3 %"
    assert percent(2, 2) == "100.0 %"
    assert percent(0, 5) == "0.0 %"
    assert percent(3, 4000) == "0.07 %"  # complaint rates live under one percent
    assert percent(1, 0) == "—" and percent(0, None) == "—"
    assert number(2000) == "2,000" and number(0) == "0" and number(None) == ""

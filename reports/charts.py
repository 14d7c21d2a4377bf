"""Charts drawn on the server as SVG: no script, no CDN, readable without colour (labels)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.utils.formats import date_format, number_format
from django.utils.translation import gettext, npgettext, pgettext

from msc_admin.humanize import percent_of
from reports.selectors import Day, StepLine

WIDTH, HEIGHT, PAD = 640, 180, 28


def _day(day: date) -> str:
    """A day as the axis and labels write it, in the active language: "Nov 3", "3 nov"."""
    # Translators: a short day of the year, as a Django date format ("M j": "Nov 3").
    return date_format(day, pgettext("short day, date format", "M j"))


def _count(value: int) -> str:
    return number_format(value, force_grouping=True)


def _sent(n: int) -> str:
    """ "1 sent", "2,000 sent": each language's plural form ("1 enviado", "2 enviados")."""
    return npgettext("chart", "%(n)s sent", "%(n)s sent", n) % {"n": _count(n)}


def _bounced(n: int) -> str:
    return npgettext("chart", "%(n)s bounced", "%(n)s bounced", n) % {"n": _count(n)}


def _n(value: float) -> str:
    """A coordinate as SVG wants it: plain, one decimal, never localised by the template."""
    return f"{value:.1f}"


@dataclass(frozen=True)
class Bar:
    x: str
    y: str
    width: str
    height: str
    label: str


@dataclass(frozen=True)
class TrendChart:
    sent: list[Bar]
    bounced: list[Bar]
    top: int
    width: int = WIDTH
    height: int = HEIGHT
    pad: int = PAD
    first: str = ""
    last: str = ""
    summary: str = ""


def trend_chart(days: list[Day]) -> TrendChart:
    """Bars per day: sent (light) with the bounced part (dark) drawn over it."""
    top = max([d.sent for d in days] + [1])
    plot_w, plot_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    step = plot_w / max(len(days), 1)
    width = max(step * 0.7, 1.0)
    sent, bounced = [], []
    for n, d in enumerate(days):
        x = PAD + n * step + (step - width) / 2
        h_sent = plot_h * d.sent / top
        h_bounced = plot_h * d.bounced / top
        label = pgettext("chart tooltip: a day's mail", "%(day)s: %(sent)s, %(bounced)s") % {
            "day": _day(d.day),
            "sent": _sent(d.sent),
            "bounced": _bounced(d.bounced),
        }
        sent.append(Bar(_n(x), _n(PAD + plot_h - h_sent), _n(width), _n(h_sent), label))
        bounced.append(Bar(_n(x), _n(PAD + plot_h - h_bounced), _n(width), _n(h_bounced), label))
    total_sent = sum(d.sent for d in days)
    total_bounced = sum(d.bounced for d in days)
    rate = percent_of(total_bounced, total_sent) if total_sent else gettext("no mail")
    summary = (
        gettext(
            "%(sent)s and %(bounced)s from %(first)s to %(last)s (bounce rate %(rate)s); "
            "busiest day %(top)s."
        )
        % {
            "sent": _sent(total_sent),
            "bounced": _bounced(total_bounced),
            "first": _day(days[0].day),
            "last": _day(days[-1].day),
            "rate": rate,
            "top": _sent(max(top, 0)),
        }
        if days
        else gettext("No days in range.")
    )
    return TrendChart(
        sent,
        bounced,
        top,
        first=_day(days[0].day) if days else "",
        last=_day(days[-1].day) if days else "",
        summary=summary,
    )


def nice_top(value: int) -> int:
    """The axis' end: the smallest 1, 2 or 5 times a power of ten at or above ``value``
    (at least 1), so that its ticks (0, half, end) are round numbers."""
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


@dataclass(frozen=True)
class StepBar:
    position: int
    template: str
    sent: str  # the figures as people read them ("1,204")
    bounced: str
    sent_width: str  # percent of the axis, for the SVG bar (viewBox 0 0 100 10)
    bounced_width: str
    label: str


@dataclass(frozen=True)
class StepChart:
    bars: list[StepBar]
    ticks: list[str]  # the axis: 0, half, end


def step_chart(steps: list[StepLine]) -> StepChart:
    """One horizontal bar per step, sent with its bounced part over it, on a common axis: the
    funnel of a campaign. Names and figures are text beside the bars (not in the SVG), so they
    keep their size at any width."""
    top = nice_top(max([s.sent for s in steps] + [1]))
    bars = [
        StepBar(
            position=s.position,
            template=s.template,
            sent=_count(s.sent),
            bounced=_count(s.bounced),
            sent_width=_n(100 * s.sent / top),
            bounced_width=_n(100 * s.bounced / top),
            label=gettext("Step %(position)s (%(template)s): %(sent)s, %(bounced)s")
            % {
                "position": s.position,
                "template": s.template,
                "sent": _sent(s.sent),
                "bounced": _bounced(s.bounced),
            },
        )
        for s in steps
    ]
    ticks = [0, top // 2, top] if top % 2 == 0 else [0, top]
    return StepChart(bars, [_count(t) for t in ticks])

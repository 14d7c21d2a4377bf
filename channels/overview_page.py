"""What apps above channels show in the Limits section of Delivery channels.

The page belongs to channels, but the usage it shows is counted by sending, which sits above
it: sending adds a panel here when it starts (``AppConfig.ready``), so channels never imports
it. A panel is a template included with ``data=context``, as on the home page."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest

from accounts.home import Notice


@dataclass(frozen=True)
class Section:
    """One section of the page, shown as a tab: ``?section=<key>``."""

    key: str
    label: str


PanelSource = Callable[[HttpRequest], list[Notice]]

_limit_panels: list[PanelSource] = []


def add_limit_panels(source: PanelSource) -> None:
    if source not in _limit_panels:
        _limit_panels.append(source)


def limit_panels(request: HttpRequest) -> list[Notice]:
    """The panels every added source gives for this request, in the order they were added."""
    return [panel for source in _limit_panels for panel in source(request)]

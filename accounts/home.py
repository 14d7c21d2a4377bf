"""What apps above accounts show on the home page.

The home page belongs to accounts, which sits below every feature app: an app adds a notice
source here when it starts (``AppConfig.ready``), so accounts never imports it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest


@dataclass(frozen=True)
class Notice:
    """A template to include at the top of the home page, with its context."""

    template: str
    context: dict[str, Any]


NoticeSource = Callable[[HttpRequest], list[Notice]]

_sources: list[NoticeSource] = []


def add_notices(source: NoticeSource) -> None:
    if source not in _sources:
        _sources.append(source)


def notices(request: HttpRequest) -> list[Notice]:
    return [notice for source in _sources for notice in source(request)]

"""What apps above accounts show on the home page.

The home page belongs to accounts, which sits below every feature app: an app adds its sources
here when it starts (``AppConfig.ready``), so accounts never imports it. Three kinds:

- notices: a template shown in the attention list (the sending-domain warnings);
- tiles: the overview, one figure-backed card per source, each one cheap query or a few on
  roll-ups and indexed counts, whatever the amount of data (``tests/accounts/test_home.py``
  pins the page's queries);
- attention items: one line each ("2 channels paused"), a count and the page it comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest


@dataclass(frozen=True)
class Notice:
    """A template to include in the home page's attention list, with its context."""

    template: str
    context: dict[str, Any]


@dataclass(frozen=True)
class Tile:
    """A card of the overview: ``template`` included with ``data=context``. ``order`` places it
    (smaller first)."""

    template: str
    context: dict[str, Any]
    order: int = 50


@dataclass(frozen=True)
class Attention:
    """One line of the attention list: ``count`` things (``text`` says what, with the count in
    words), at ``link``. ``bad`` marks what stops mail, rather than what is worth a look."""

    key: str  # for tests and anchors: "paused-channels"
    count: int
    text: str
    link: str
    bad: bool = False


NoticeSource = Callable[[HttpRequest], list[Notice]]
TileSource = Callable[[HttpRequest], list[Tile]]
AttentionSource = Callable[[HttpRequest], list[Attention]]

_sources: list[NoticeSource] = []
_tiles: list[TileSource] = []
_attention: list[AttentionSource] = []


def add_notices(source: NoticeSource) -> None:
    if source not in _sources:
        _sources.append(source)


def add_tiles(source: TileSource) -> None:
    if source not in _tiles:
        _tiles.append(source)


def add_attention(source: AttentionSource) -> None:
    if source not in _attention:
        _attention.append(source)


def member(request: HttpRequest) -> Any:
    """The signed-in person's membership of the tenant shown (None for staff and guests)."""
    return getattr(request, "membership", None)


def by_role(
    request: HttpRequest,
    *,
    admin: Callable[[HttpRequest], Tile],
    rep: Callable[[HttpRequest], Tile],
) -> list[Tile]:
    """An app's tile for the person's role: its admin tile or its rep tile (none for staff)."""
    found = member(request)
    if not found:
        return []
    return [admin(request) if found.is_admin else rep(request)]


def notices(request: HttpRequest) -> list[Notice]:
    return [notice for source in _sources for notice in source(request)]


def tiles(request: HttpRequest) -> list[Tile]:
    found = [tile for source in _tiles for tile in source(request)]
    return sorted(found, key=lambda tile: tile.order)


def attention(request: HttpRequest) -> list[Attention]:
    """The items with something to look at (a count above 0), worst first."""
    found = [item for source in _attention for item in source(request) if item.count]
    return sorted(found, key=lambda item: not item.bad)

"""What apps above channels show on the tenant admin's Team settings page.

The page belongs to channels, but some of what it shows is read from apps that channels sits
below (staff's record of a move off legacy servers, the mail sending holds): those apps add a
panel here when they start (``AppConfig.ready``), so channels never imports them."""

from __future__ import annotations

from collections.abc import Callable

from accounts.models import Tenant

Panel = Callable[[Tenant], dict[str, object]]

_panels: list[Panel] = []


def add_panel(panel: Panel) -> None:
    """Show what ``panel(tenant)`` gives (template context) on the Team settings page."""
    _panels.append(panel)


def panels(tenant: Tenant) -> dict[str, object]:
    """The context every added panel gives for this tenant."""
    context: dict[str, object] = {}
    for panel in _panels:
        context.update(panel(tenant))
    return context

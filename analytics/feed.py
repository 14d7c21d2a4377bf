"""Writing to the live feed. Callers are inside the transaction of the change they report."""

from __future__ import annotations

from collections.abc import Iterable

from analytics.models import FeedKind, Notification


def notify(tenant_id: int, entries: Iterable[tuple[int, str, str, str]]) -> None:
    """Add feed entries: (user id, kind, text, link)."""
    rows = [
        Notification(tenant_id=tenant_id, user_id=user_id, kind=kind, text=text[:300], link=link)
        for user_id, kind, text, link in entries
    ]
    Notification.objects.bulk_create(rows)


__all__ = ["FeedKind", "notify"]

"""Template filters every template has (a builtin library, see TEMPLATES in settings)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.timesince import timesince

from msc_admin import audit

register = template.Library()


@register.filter
def audit_lines(stored: dict[str, Any] | None) -> list[audit.Line]:
    """An audit row's stored fields in words: ``msc_admin.audit.lines``."""
    return audit.lines(stored)


@register.filter
def ago(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in words: "just now" under a minute (never "0 minutes ago"), "3 minutes
    ago", "5 hours ago", "20 days ago"; past six weeks, the date."""
    if not isinstance(value, datetime):
        return ""
    now = now or timezone.now()
    delta = now - value
    if delta < timedelta(minutes=1):
        return "just now"
    if delta < timedelta(days=1):
        return f"{timesince(value, now, depth=1)} ago".replace("\xa0", " ")
    if delta < timedelta(weeks=6):
        return f"{delta.days} day{'s' if delta.days != 1 else ''} ago"
    return date_format(timezone.localtime(value), "M j, Y")

"""Bounce reasons in human words on every page that shows one: ``{% load bounce_reasons %}``,
then ``{{ event.reason|reason_label }}``. The code stays in the tooltip and in the CSV exports."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from bounceparse import label

register = template.Library()

UNKNOWN = "Reason unknown"


@register.filter
def reason_label(code: str | None) -> str:
    """``<span class="reason" title="Reason code: userunknown">Mailbox does not exist</span>``,
    escaped by ``format_html``."""
    if not code or code == "unknown":
        return format_html('<span class="reason">{}</span>', UNKNOWN)
    return format_html('<span class="reason" title="Reason code: {}">{}</span>', code, label(code))


@register.filter
def reason_words(code: str | None) -> str:
    """The reason in words alone, where markup cannot go (attributes, CSV cells)."""
    return label(code) if code and code != "unknown" else UNKNOWN

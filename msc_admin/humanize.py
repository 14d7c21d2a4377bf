"""Template filters every template has (a builtin library, see TEMPLATES in settings)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.formats import date_format, number_format
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from msc_admin import audit, stored

register = template.Library()


@register.simple_tag
def own_language_names() -> list[tuple[str, str]]:
    """The languages, each named in itself as ``settings.LANGUAGES`` writes them ("English",
    "Español"): a language choice never names English "Inglês"."""
    return list(settings.LANGUAGES)


# Django 6's label for a select's empty choice. Django's own Portuguese and Spanish catalogues do
# not translate it yet; the project's catalogue (locale/, searched before Django's) does.
gettext_noop("- Select an option -")


@register.filter
def audit_lines(stored: dict[str, Any] | None) -> list[audit.Line]:
    """An audit row's stored fields in words: ``msc_admin.audit.lines``."""
    return audit.lines(stored)


@register.filter
def audit_action(stored_action: str) -> str:
    """An audit row's action in words: ``msc_admin.audit.action``."""
    return audit.action(stored_action)


@register.filter
def said(value: str | None) -> str:
    """A text the product stored (``msc_admin.stored``), in the reader's language."""
    return stored.read(value)


@register.filter
def ago(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in words (the page's language): "just now" under a minute (never "0
    minutes ago"), "3 minutes ago", "5 hours ago", "20 days ago"; past six weeks, the date."""
    if not isinstance(value, datetime):
        return ""
    now = now or timezone.now()
    delta = now - value
    if delta < timedelta(minutes=1):
        return _("just now")
    if delta < timedelta(days=1):
        since = timesince(value, now, depth=1).replace("\xa0", " ")
        return _("%(time)s ago") % {"time": since}
    if delta < timedelta(weeks=6):
        return ngettext("%(n)d day ago", "%(n)d days ago", delta.days) % {"n": delta.days}
    return date_format(timezone.localtime(value), "DATE_FORMAT")


def percent_of(part: float | None, whole: float | None) -> str:
    """A rate as every page writes it: one decimal ("33.3 %"; "33,3 %" in Portuguese and
    Spanish), two under one percent, where complaint rates live ("0.08 %"); "—" when there is
    nothing to divide by."""
    if not whole:
        return "—"
    rate = 100 * (part or 0) / whole
    places = 2 if 0 < rate < 1 else 1
    return f"{number_format(round(rate, places), decimal_pos=places)} %"


@register.filter
def percent(part: float | None, whole: float | None) -> str:
    """``{{ bounced|percent:sent }}``: see ``percent_of``."""
    return percent_of(part, whole)


@register.filter
def number(value: float | None) -> str:
    """A count with the language's thousands separators ("2,000", "2.000"), as tables and
    limits show it."""
    if value is None or value == "":
        return ""
    try:
        return number_format(int(value), force_grouping=True)
    except (TypeError, ValueError):
        return str(value)


@register.filter
def person(user: Any) -> str:
    """Who someone is, as colleagues know them: their name when they gave one, else their
    address ("Priya Patel", "rep@acme.test"); "" for nobody."""
    if user is None or not getattr(user, "email", None):
        return ""
    name = user.get_full_name().strip() if hasattr(user, "get_full_name") else ""
    return name or str(user.email)


# Words in any alphabet: "Área" and "Autenticação" are one word each, as "Area" is.
_WORD = re.compile(r"[^\W\d_]+")
_TAG = re.compile(r"(<[^>]*>)")
# Names that keep their capital in a sentence.
PROPER_NOUNS = frozenset({"Google", "Microsoft", "Gmail", "Exchange", "Office", "Outlook"})


@register.filter(is_safe=True)
def sentence_case(text: str) -> str:
    """A Title Case heading in the product's sentence case: "Two-Factor Authentication" reads
    "Two-factor authentication", "Sign In Via Google" "Sign in via Google". Only capitalised
    words after the first change (never acronyms such as TOTP, nor names); tags stay as they
    are, and changing letters' case never makes text unsafe."""
    first = True

    def lower(match: re.Match[str]) -> str:
        nonlocal first
        word = match.group(0)
        if first:
            first = False
            return word
        if word in PROPER_NOUNS or not (word[0].isupper() and word[1:].islower()):
            return word
        return word.lower()

    return "".join(
        part if _TAG.fullmatch(part) else _WORD.sub(lower, part) for part in _TAG.split(str(text))
    )

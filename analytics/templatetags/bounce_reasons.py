"""Bounce reasons in human words on every page that shows one: ``{% load bounce_reasons %}``,
then ``{{ event.reason|reason_label }}``. The code stays in the tooltip and in the CSV exports.

The words are ``bounceparse.labels`` (pure Python, English) translated here: ``LABELS`` holds
each one marked for the catalogues, and ``words`` says a reason in the active language."""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.translation import gettext, gettext_lazy

from bounceparse import labels

register = template.Library()

# Each label of ``bounceparse.labels.LABELS``, as makemessages finds it; a test checks that none
# is missing and that each reads as the parser's English.
LABELS = {
    "authfailure": gettext_lazy("Failed the sender's authentication checks (SPF, DKIM, DMARC)"),
    "badreputation": gettext_lazy("Refused for the sending server's poor reputation"),
    "blocked": gettext_lazy("Blocked by the receiving server"),
    "contenterror": gettext_lazy("Refused for the message's format"),
    "exceedlimit": gettext_lazy("Message larger than the mailbox accepts"),
    "expired": gettext_lazy("Gave up after retrying for too long"),
    "filtered": gettext_lazy("Refused by the recipient's filter"),
    "hasmoved": gettext_lazy("Mailbox has moved"),
    "hostunknown": gettext_lazy("Domain does not exist"),
    "mailboxfull": gettext_lazy("Mailbox full"),
    "mailererror": gettext_lazy("The receiving mail program failed"),
    "mesgtoobig": gettext_lazy("Message too big"),
    "networkerror": gettext_lazy("Network or DNS problem on the way"),
    "norelaying": gettext_lazy("Receiving server does not relay for us"),
    "notaccept": gettext_lazy("Domain does not accept mail"),
    "notcompliantrfc": gettext_lazy("Message does not follow the mail standards"),
    "onhold": gettext_lazy("Reason not stated clearly"),
    "policyviolation": gettext_lazy("Refused by the receiving organisation's policy"),
    "rejected": gettext_lazy("Sender address refused"),
    "requireptr": gettext_lazy("Sending server has no reverse DNS"),
    "securityerror": gettext_lazy("Refused for a security requirement"),
    "spamdetected": gettext_lazy("Blocked as spam"),
    "speeding": gettext_lazy("Sending too fast for the receiver"),
    "suspend": gettext_lazy("Mailbox disabled or suspended"),
    "syntaxerror": gettext_lazy("Mail protocol error"),
    "systemerror": gettext_lazy("Receiving server's error"),
    "systemfull": gettext_lazy("Receiving server out of space"),
    "toomanyconn": gettext_lazy("Too many connections or recipients at once"),
    "undefined": gettext_lazy("Reason unknown"),
    "userunknown": gettext_lazy("Mailbox does not exist"),
    "virusdetected": gettext_lazy("Blocked as a virus"),
}
UNKNOWN = gettext_lazy("Reason unknown")


def words(code: str | None) -> str:
    """The reason in the active language: a known code's label, "Reason unknown" for none (or
    "unknown"), an unknown code as it is (or the parser's English for a label added there but
    not here yet)."""
    if not code or code == "unknown":
        return str(UNKNOWN)
    if code in LABELS:
        return str(LABELS[code])
    return gettext(labels.label(code)) if code in labels.LABELS else code


@register.filter
def reason_label(code: str | None) -> str:
    """``<span class="reason" title="Reason code: userunknown">Mailbox does not exist</span>``,
    escaped by ``format_html``."""
    if not code or code == "unknown":
        return format_html('<span class="reason">{}</span>', UNKNOWN)
    title = gettext("Reason code: %(code)s") % {"code": code}
    return format_html('<span class="reason" title="{}">{}</span>', title, words(code))


@register.filter
def reason_words(code: str | None) -> str:
    """The reason in words alone, where markup cannot go (attributes, CSV cells)."""
    return words(code)

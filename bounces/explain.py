"""How the parser reached a bounce's verdict, in one sentence of the active language: the
translated twin of ``bounceparse.describe`` (which stays pure Python, in English). What the
server said is quoted as it came, never translated. A test checks that the English sentence
is ``bounceparse.describe``'s, for every rule and source."""

from __future__ import annotations

from django.utils.translation import gettext, gettext_lazy, pgettext

import bounceparse
from analytics.templatetags.bounce_reasons import words

# Where a verdict was read (``bounceparse.evidence.SOURCES``).
SOURCES = {
    "dsn": gettext_lazy("in the delivery report"),
    "text": gettext_lazy("in the bounce message"),
    "json": gettext_lazy("in the provider's notification"),
    "returned": gettext_lazy("in the bounce (the recipient is the returned message's To)"),
    "esp": gettext_lazy("in the sending service's bounce event"),
    "headers": gettext_lazy("in the message's headers"),
}


def describe(recipient: bounceparse.Recipient) -> str:
    """``bounceparse.describe`` in the active language."""
    ev = recipient.evidence
    status = "" if recipient.status.endswith(".0.0") else recipient.status
    codes = " ".join(c for c in (recipient.smtp_code, status) if c)
    meaning = words(recipient.reason).lower()
    where = SOURCES.get(ev.source)
    values = {
        "class": pgettext("bounce class, starts a sentence", "Hard")
        if recipient.hard
        else pgettext("bounce class, starts a sentence", "Soft"),
        # Translators: where the verdict was read ("in the delivery report"), with a space
        # before it; empty when nothing says where.
        "where": f" {where}" if where else "",
        "codes": codes,
        "meaning": meaning,
        "detail": ev.detail,
    }
    if ev.rule == "phrase":
        if codes:
            # Translators: %(detail)s is what the server said, quoted as it came.
            text = gettext("%(class)s: the receiving server said %(codes)s '%(detail)s'%(where)s.")
        else:
            text = gettext("%(class)s: the receiving server said '%(detail)s'%(where)s.")
    elif ev.rule == "status":
        code, colon, said = ev.detail.partition(":")
        values["code"], values["said"] = code or recipient.status, said.strip()
        if colon:
            text = gettext(
                '%(class)s: the status %(code)s means "%(meaning)s" and the server said '
                "'%(said)s'%(where)s."
            )
        else:
            text = gettext('%(class)s: the status %(code)s means "%(meaning)s"%(where)s.')
    elif ev.rule == "vendor":
        values["name"] = ev.detail or ev.format
        text = gettext('%(class)s: %(name)s\'s bounce format reports "%(meaning)s"%(where)s.')
    elif ev.rule == "provider":
        values["code"] = codes or recipient.status
        text = gettext(
            '%(class)s: %(detail)s\'s documented reply %(code)s means "%(meaning)s"%(where)s.'
        )
    elif ev.rule == "command":
        text = gettext("%(class)s: the receiving server refused our %(detail)s command%(where)s.")
    elif ev.rule == "reply":
        text = gettext(
            "%(class)s: the receiving server answered with reply code %(detail)s%(where)s."
        )
    elif ev.rule == "action":
        text = gettext(
            "%(class)s: the report says delivery is delayed and still being retried or given "
            "up%(where)s."
        )
    elif ev.rule == "class":
        if ev.detail[:3] in ("5.6", "4.6"):
            text = gettext(
                "%(class)s: the status class %(detail)s is a refusal of the message's "
                "content%(where)s."
            )
        elif ev.detail[:3] in ("5.7", "4.7"):
            text = gettext(
                "%(class)s: the status class %(detail)s is a security or policy refusal%(where)s."
            )
        else:
            text = gettext("%(class)s: the status class %(detail)s is a refusal%(where)s.")
    elif ev.rule == "hint":
        text = gettext('%(class)s: the sending service classed it as "%(meaning)s"%(where)s.')
    elif codes:
        text = gettext("%(class)s: the receiving server said %(codes)s%(where)s.")
    else:
        text = gettext("%(class)s: nobody stated a reason%(where)s.")
    return text % values

"""Why the parser decided what it did, for each message and each recipient.

``Evidence`` is small and machine-readable (``as_dict``); ``describe`` turns a recipient's into one
English sentence for a page, e.g. "Hard: the receiving server said 550 5.1.1 'user unknown' in the
delivery report."
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .labels import label

if TYPE_CHECKING:
    from .core import Recipient

PARSER_VERSION = "2.0"

# Where a verdict was read.
SOURCES = {
    "dsn": "in the delivery report",
    "text": "in the bounce message",
    "json": "in the provider's notification",
    "returned": "in the bounce (the recipient is the returned message's To)",
    "esp": "in the sending service's bounce event",
    "headers": "in the message's headers",
    "none": "",
}


@dataclass(frozen=True)
class Evidence:
    """``source``: where it was read (dsn, text, json, returned, esp, headers, none).
    ``rule``: what decided it. For a recipient: status (the enhanced status code names the
    reason), phrase (the server's words), vendor (the bounce's format states it), provider (the
    receiving provider's documented reply), command (the SMTP command refused), reply (the SMTP
    reply code), action (the report says delayed), class (the status code's class), hint (the
    sending service's own classification), none. For a message: delivery-status, vendor-format,
    failed-recipients, mail-system, failure-words, provider-json, complaint, auto-reply,
    list-mail, receipt, no-evidence, refused.
    ``detail``: the code, words or name that matched. ``format``: the vendor format recognised."""

    source: str
    rule: str
    detail: str = ""
    format: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "source": self.source,
            "rule": self.rule,
            "detail": self.detail,
            "format": self.format,
        }


NO_EVIDENCE = Evidence("none", "none")


def _codes(recipient: Recipient) -> str:
    status = recipient.status if not recipient.status.endswith(".0.0") else ""
    return " ".join(c for c in (recipient.smtp_code, status) if c)


def describe(recipient: Recipient) -> str:
    """One English sentence saying how the recipient's verdict was reached."""
    ev = recipient.evidence
    kind = "Hard" if recipient.hard else "Soft"
    where = SOURCES.get(ev.source, "")
    meaning = label(recipient.reason)
    codes = _codes(recipient)
    said = f"said {codes} " if codes else "said "
    if ev.rule == "phrase":
        text = f"the receiving server {said}'{ev.detail}'"
    elif ev.rule == "status":
        code = ev.detail.split(":", 1)[0] or recipient.status
        text = f'the status {code} means "{meaning.lower()}"'
        if ":" in ev.detail:
            text += f" and the server said '{ev.detail.split(':', 1)[1].strip()}'"
    elif ev.rule == "vendor":
        text = f'{ev.detail or ev.format}\'s bounce format reports "{meaning.lower()}"'
    elif ev.rule == "provider":
        code = codes or recipient.status
        text = f'{ev.detail}\'s documented reply {code} means "{meaning.lower()}"'
    elif ev.rule == "command":
        text = f"the receiving server refused our {ev.detail} command"
    elif ev.rule == "reply":
        text = f"the receiving server answered with reply code {ev.detail}"
    elif ev.rule == "action":
        text = "the report says delivery is delayed and still being retried or given up"
    elif ev.rule == "class":
        text = f"the status class {ev.detail} is a {_CLASS_WORDS.get(ev.detail[:3], 'refusal')}"
    elif ev.rule == "hint":
        text = f'the sending service classed it as "{meaning.lower()}"'
    else:
        text = f"the receiving server {said.strip()}" if codes else "nobody stated a reason"
    sentence = f"{kind}: {text}"
    if where:
        sentence += f" {where}"
    return sentence + "."


_CLASS_WORDS = {
    "5.6": "refusal of the message's content",
    "4.6": "refusal of the message's content",
    "5.7": "security or policy refusal",
    "4.7": "security or policy refusal",
}

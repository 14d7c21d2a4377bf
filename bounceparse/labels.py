"""Each reason of the taxonomy in human words, for pages and reports."""

from __future__ import annotations

LABELS: dict[str, str] = {
    "authfailure": "Failed the sender's authentication checks (SPF, DKIM, DMARC)",
    "badreputation": "Refused for the sending server's poor reputation",
    "blocked": "Blocked by the receiving server",
    "contenterror": "Refused for the message's format",
    "exceedlimit": "Message larger than the mailbox accepts",
    "expired": "Gave up after retrying for too long",
    "filtered": "Refused by the recipient's filter",
    "hasmoved": "Mailbox has moved",
    "hostunknown": "Domain does not exist",
    "mailboxfull": "Mailbox full",
    "mailererror": "The receiving mail program failed",
    "mesgtoobig": "Message too big",
    "networkerror": "Network or DNS problem on the way",
    "norelaying": "Receiving server does not relay for us",
    "notaccept": "Domain does not accept mail",
    "notcompliantrfc": "Message does not follow the mail standards",
    "onhold": "Reason not stated clearly",
    "policyviolation": "Refused by the receiving organisation's policy",
    "rejected": "Sender address refused",
    "requireptr": "Sending server has no reverse DNS",
    "securityerror": "Refused for a security requirement",
    "spamdetected": "Blocked as spam",
    "speeding": "Sending too fast for the receiver",
    "suspend": "Mailbox disabled or suspended",
    "syntaxerror": "Mail protocol error",
    "systemerror": "Receiving server's error",
    "systemfull": "Receiving server out of space",
    "toomanyconn": "Too many connections or recipients at once",
    "undefined": "Reason unknown",
    "userunknown": "Mailbox does not exist",
    "virusdetected": "Blocked as a virus",
}


def label(reason: str) -> str:
    """The reason in human words (an unknown name is given back as it is)."""
    return LABELS.get(reason, reason)

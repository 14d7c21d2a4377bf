"""Bounces for the embedded demo: realistic DSNs, the demo's local mailboxes, and seeded history.

The demo's "receiving servers" for the contacts' ``*.example`` domains know two kinds of dead
address: ``former.*`` (the person left: 550 5.1.1, a hard bounce) and ``full.*`` (552 5.2.2,
mailbox full, soft). The demo SMTP relay accepts such mail and then, as a real relay does, sends
the sender a delivery status notification; it lands in the sender's local mailbox
(``MSC_DEMO_MAILBOXES``), which the inbox scanner reads like an IMAP folder.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta
from email import message_from_bytes
from email.utils import format_datetime, make_msgid
from pathlib import Path

from django.db.models import F
from django.utils import timezone

from accounts.models import Tenant
from sending.models import Message, MessageStatus, Suppression

from . import services
from .models import BounceEvent

DEAD = {
    "former.": ("5.1.1", "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"),
    "full.": ("5.2.2", "552 5.2.2 <{rcpt}>: Mailbox full: quota exceeded"),
}
# Reasons seen in the demo's month of history, with their share.
HISTORY = [
    (0.55, "5.1.1", "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in relay table"),
    (0.15, "5.2.2", "552 5.2.2 <{rcpt}>: Mailbox full: quota exceeded"),
    (0.15, "5.7.1", "550 5.7.1 Message rejected as spam by Content Filtering"),
    (0.15, "5.4.4", "550 5.4.4 Host or domain name not found. Name service error for {domain}"),
]


def dead_address(recipient: str) -> tuple[str, str] | None:
    """(status, diagnostic) when the demo's receiving servers refuse this address, else None."""
    local, _, domain = recipient.lower().partition("@")
    if not domain.endswith(".example"):
        return None
    for prefix, (status, diagnostic) in DEAD.items():
        if local.startswith(prefix):
            return status, diagnostic.format(rcpt=recipient)
    return None


def dsn(original: bytes, *, recipient: str, status: str, diagnostic: str) -> bytes:
    """A Postfix-style delivery status notification returning the original's headers."""
    head = original.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("utf-8", "replace")
    sender = message_from_bytes(original).get("From", "")
    action = "delayed" if status.startswith("4") else "failed"
    subject = (
        "Delayed Mail (still being retried)"
        if action == "delayed"
        else "Undelivered Mail Returned to Sender"
    )
    text = f"""Return-Path: <>
From: MAILER-DAEMON@relay.demo.test (Mail Delivery System)
To: {sender}
Subject: {subject}
Date: {format_datetime(timezone.now())}
Message-ID: {make_msgid(domain="relay.demo.test")}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="DSN-BOUNDARY"

--DSN-BOUNDARY
Content-Type: text/plain; charset=us-ascii

This is the mail system at host relay.demo.test.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{recipient}>: host mx.{recipient.partition("@")[2]}[192.0.2.25] said:
    {diagnostic} (in reply to RCPT TO command)

--DSN-BOUNDARY
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.demo.test

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.{recipient.partition("@")[2]}
Diagnostic-Code: smtp; {diagnostic}

--DSN-BOUNDARY
Content-Type: text/rfc822-headers

{head}

--DSN-BOUNDARY--
"""
    return text.replace("\n", "\r\n").encode()


def deliver_local(root: str | Path, address: str, raw: bytes) -> Path:
    """Put a message in a demo mailbox as ``<uid>.eml``; UIDs only grow."""
    folder = Path(root) / address.lower().replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        path = folder / f"{time.time_ns() // 1000}.eml"
        try:
            with path.open("xb") as handle:
                handle.write(raw)
            return path
        except FileExistsError:
            continue


def seed_bounces(tenant: Tenant) -> int:
    """Record the demo history's bounced messages through the real ingestion path, each with a
    realistic DSN as its raw message; plus one bounce for mail we never sent (unmatched)."""
    if BounceEvent.objects.filter(tenant=tenant).exists():
        return 0
    bounced = list(Message.objects.for_tenant(tenant).filter(status=MessageStatus.BOUNCED))
    items = []
    for message in bounced:
        status, diagnostic = _pick(message.to_email)
        domain = message.to_email.partition("@")[2]
        raw = dsn(
            _original(message),
            recipient=message.to_email,
            status=status,
            diagnostic=diagnostic.format(rcpt=message.to_email, domain=domain),
        )
        at = message.bounced_at or timezone.now()
        items.append(services.Incoming(raw, at))
    # The history rows say "bounced" already; ingestion applies a bounce to sent mail only.
    Message.objects.filter(pk__in=[m.pk for m in bounced]).update(status=MessageStatus.SENT)
    stray = dsn(
        f"From: someone@{tenant.slug}.test\nTo: old.list@defunct.example\n"
        f"Subject: Newsletter\nMessage-ID: <not-ours@{tenant.slug}.test>\n\n".encode(),
        recipient="old.list@defunct.example",
        status="5.1.2",
        diagnostic="550 5.1.2 Host unknown (Name server: defunct.example: host not found)",
    )
    items.append(services.Incoming(stray, timezone.now() - timedelta(days=2)))
    done = services.ingest_many(tenant=tenant, items=items)
    for message in bounced:
        Message.objects.filter(pk=message.pk).update(bounced_at=message.bounced_at)
    # Each address went on the list when its bounce arrived, not when the demo was seeded (the
    # home page counts today's additions).
    Suppression.objects.filter(tenant=tenant, bounced_at__isnull=False).update(
        created_at=F("bounced_at")
    )
    return sum(len(d.created) for d in done)


def _pick(address: str) -> tuple[str, str]:
    """The reason the demo's receiving servers give for this address: always the same one for
    an address (a dead mailbox is not full the next week), and a domain that does not exist
    does not exist for every address at it, in every tenant."""
    address = address.lower()
    domain = address.partition("@")[2]
    *mailboxes, (nowhere, status, diagnostic) = HISTORY
    if _roll(f"domain {domain}") < nowhere:
        return status, diagnostic
    roll, total = _roll(f"address {address}") * (1 - nowhere), 0.0
    for share, status, diagnostic in mailboxes:
        total += share
        if roll <= total:
            return status, diagnostic
    return mailboxes[-1][1], mailboxes[-1][2]


def _roll(key: str) -> float:
    return random.Random(key).random()  # noqa: S311 - demo data, reproducible


def _original(message: Message) -> bytes:
    from sending.mime import PRODUCT_HEADER, token_of

    return (
        f"From: {message.from_name} <{message.from_email}>\nTo: {message.to_email}\n"
        f"Subject: {message.subject}\nMessage-ID: {message.message_id}\n"
        f"{PRODUCT_HEADER}: {token_of(message.message_id)}\n\n"
    ).encode()

"""Bounces built like a real MTA's, for messages we really created."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from bounceparse.quality import CORPUS
from msc_admin.devtls import Certificates
from sending.models import Message, MessageStatus
from tests.mailservers import ImapServer, dovecot_server
from tests.sending.conftest import contact, relay, rep_identity, team_channel  # noqa: F401


def corpus() -> Path:
    """The bounce corpus vendored in the repository (``tests/corpus/bounces``). A test that needs
    it fails, never skips, when it is missing: a checkout without it cannot prove the parser."""
    if not (CORPUS / "expected.json").is_file() or not (CORPUS / "emails").is_dir():
        pytest.fail(
            f"the bounce corpus is missing: {CORPUS} should hold expected.json and emails/*.eml "
            "(it is part of the repository: restore it with `git checkout -- tests/corpus`)",
            pytrace=False,
        )
    return CORPUS


@pytest.fixture
def dovecot(certs: Certificates, settings) -> Iterator[ImapServer]:
    """A real Dovecot on loopback; Gmail and Exchange Online IMAP both point at it."""
    with dovecot_server(certs.trusted, certs.ca_file) as server:
        settings.MSC_GMAIL_IMAP = f"{server.host}:{server.port}"
        settings.MSC_OUTLOOK_IMAP = f"{server.host}:{server.port}"
        yield server


def mark_sent(message: Message, *, ago: timedelta = timedelta(minutes=5)) -> Message:
    Message.objects.filter(pk=message.pk).update(
        status=MessageStatus.SENT, sent_at=timezone.now() - ago, next_attempt_at=None
    )
    message.refresh_from_db()
    return message


def dsn_for(
    message: Message | None,
    *,
    recipient: str | None = None,
    status: str = "5.1.1",
    diagnostic: str = "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown",
    message_id: str | None = "use-message",
    product_header: bool = True,
    own_id: str = "<dsn-1@mx.prospect.test>",
    crlf: bool = False,
) -> bytes:
    """A Postfix-style RFC 3464 report about ``message``."""
    rcpt = recipient or (message.to_email if message else "nobody@prospect.test")
    sender = message.from_email if message else "rep@acme.test"
    returned_id = message.message_id if message and message_id == "use-message" else message_id
    token = message.message_id.strip("<>").partition("@")[0].removeprefix("msc.") if message else ""
    original = [f"From: {sender}", f"To: {rcpt}", "Subject: Hello"]
    if returned_id:
        original.append(f"Message-ID: {returned_id}")
    if product_header and token:
        original.append(f"X-MSC-Message: {token}")
    text = f"""Return-Path: <>
From: MAILER-DAEMON@mx.acme.test (Mail Delivery System)
To: {sender}
Subject: Undelivered Mail Returned to Sender
Message-ID: {own_id}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

This is the mail system at host mx.acme.test.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{rcpt}>: host mx.prospect.test[192.0.2.1] said: {diagnostic.format(rcpt=rcpt)}
    (in reply to RCPT TO command)

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.acme.test

Final-Recipient: rfc822; {rcpt}
Action: failed
Status: {status}
Diagnostic-Code: smtp; {diagnostic.format(rcpt=rcpt)}

--B
Content-Type: text/rfc822-headers

{chr(10).join(original)}

--B--
"""
    data = text.encode()
    return data.replace(b"\n", b"\r\n") if crlf else data


def arf_for(
    message: Message,
    *,
    own_id: str = "<arf-1@fbl.mailbox.test>",
    recipient: str | None = None,
    message_id: bool = True,
) -> bytes:
    """An RFC 5965 feedback report (a mailbox provider's complaint loop) about ``message``.
    ``recipient`` goes in ``Original-Rcpt-To``; without it the report is redacted, as many are."""
    token = message.message_id.strip("<>").partition("@")[0].removeprefix("msc.")
    rcpt = f"Original-Rcpt-To: {recipient}\n" if recipient else "Redacted-Address: redacted\n"
    original = [f"From: {message.from_email}", "To: redacted@prospect.test", "Subject: Hello"]
    if message_id:
        original += [f"Message-ID: {message.message_id}", f"X-MSC-Message: {token}"]
    return f"""From: <fbl@fbl.mailbox.test>
To: {message.from_email}
Subject: FW: Complaint about message from 192.0.2.1
Message-ID: {own_id}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: text/plain

This is an email abuse report for an email message received from IP 192.0.2.1.

--F
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: FBL/1.0
Version: 1
{rcpt}Source-IP: 192.0.2.1

--F
Content-Type: message/rfc822

{chr(10).join(original)}

Hi there

--F--
""".encode()


def reply_to(
    message: Message,
    *,
    own_id: str = "<reply-1@prospect.test>",
    auto: bool = False,
    threaded: bool = True,
    quoted_token: bool = False,
) -> bytes:
    """A recipient's reply to ``message`` (``auto``: an out-of-office answer), naming it in
    ``In-Reply-To``/``References`` (``threaded``) or quoting our token back in its text."""
    token = message.message_id.strip("<>").partition("@")[0].removeprefix("msc.")
    head = [
        f"From: Pat <{message.to_email}>",
        f"To: {message.from_email}",
        f"Subject: {'Out of office: ' if auto else 'Re: '}{message.subject}",
        f"Message-ID: {own_id}",
        "Date: Mon, 23 Nov 2026 09:00:00 +0000",
    ]
    if threaded:
        head += [
            f"In-Reply-To: {message.message_id}",
            f"References: <older@prospect.test> {message.message_id}",
        ]
    if auto:
        head.append("Auto-Submitted: auto-replied")
    quote = f"\n> X-MSC-Message: {token}\n> Hi there\n" if quoted_token else "\n> Hi there\n"
    text = "I am away until Monday." if auto else "Thanks, let's talk on Tuesday."
    return ("\n".join(head) + f"\n\n{text}\n{quote}").encode()

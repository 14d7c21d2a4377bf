"""The parser's second version: Sisimai's reasons and their guards, what is not a bounce, the
structure read from the bytes, every verdict's evidence, and parse_bounces without Django."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

import bounceparse
from bounceparse.rules import holding_out

ROOT = Path(__file__).resolve().parents[2]


def _dsn(
    *,
    status: str,
    diagnostic: str,
    text: str = "",
    remote: str = "mx.example.com",
    action: str = "failed",
    address: str = "z@example.com",
    sender: str = "MAILER-DAEMON@mx.acme.test (Mail Delivery System)",
    subject: str = "Undelivered Mail Returned to Sender",
) -> bytes:
    """A multipart/report bounce: the human text, the delivery-status part, the returned
    headers."""
    return (
        f"From: {sender}\n"
        "To: rep@acme.test\n"
        f"Subject: {subject}\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\n'
        "\n"
        "--b1\n"
        "Content-Type: text/plain\n"
        "\n"
        f"{text or 'Your message could not be delivered.'}\n"
        "\n"
        "--b1\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        "Reporting-MTA: dns; mx.acme.test\n"
        "\n"
        f"Final-Recipient: rfc822; {address}\n"
        f"Action: {action}\n"
        f"Status: {status}\n"
        f"Remote-MTA: dns; {remote}\n"
        f"Diagnostic-Code: smtp; {diagnostic}\n"
        "\n"
        "--b1\n"
        "Content-Type: text/rfc822-headers\n"
        "\n"
        "Message-ID: <msc.abc123@acme.test>\n"
        f"To: {address}\n"
        "Subject: Hello\n"
        "\n"
        "--b1--\n"
    ).encode()


def _only(raw: bytes) -> bounceparse.Recipient:
    result = bounceparse.parse(raw)
    assert result.kind == bounceparse.BOUNCE, result
    (recipient,) = result.recipients
    return recipient


# --- reasons: the misses the issue names -----------------------------------------------------


def test_an_unknown_user_refused_after_data_is_a_filter_and_soft() -> None:
    """A server that accepted the recipient and refused the message's content says "unknown
    user" for its filter: ending a live person's campaign on it would be wrong."""
    words = "host mx.example.com[192.0.2.1] said: 550 Unknown user z@example.com"
    after_data = _only(
        _dsn(
            status="5.0.0",
            diagnostic="550 Unknown user z@example.com",
            text=f"<z@example.com>: {words} (in reply to end of DATA command)",
        )
    )
    assert (after_data.reason, after_data.hard) == ("filtered", False)
    at_rcpt = _only(
        _dsn(
            status="5.0.0",
            diagnostic="550 Unknown user z@example.com",
            text=f"<z@example.com>: {words} (in reply to RCPT TO command)",
        )
    )
    assert (at_rcpt.reason, at_rcpt.hard) == ("userunknown", True)
    assert at_rcpt.evidence.rule == "phrase"


def test_a_disabled_mailbox_is_suspended_not_unknown() -> None:
    r = _only(
        _dsn(
            status="5.2.1",
            diagnostic="550 5.2.1 The email account that you tried to reach is disabled.",
        )
    )
    assert (r.reason, r.hard) == ("suspend", False)
    assert r.evidence.as_dict() == {
        "source": "dsn",
        "rule": "phrase",
        "detail": "email account that you tried to reach is disabled",
        "format": "",
    }


def test_sending_too_fast_is_speeding() -> None:
    r = _only(
        _dsn(
            status="4.7.1",
            diagnostic="451 4.7.1 <z@example.com>: Client host rejected: Please try again slower",
        )
    )
    assert (r.reason, r.hard, r.status) == ("speeding", False, "4.7.1")


def test_a_dns_failure_is_a_network_error_not_a_missing_domain() -> None:
    missing = _only(_dsn(status="5.1.2", diagnostic="550 5.1.2 Host or domain name not found"))
    assert (missing.reason, missing.hard) == ("hostunknown", True)
    trouble = _only(
        _dsn(status="5.1.2", diagnostic="550 5.1.2 Name service error: Host not found, try again")
    )
    assert (trouble.reason, trouble.hard) == ("networkerror", False)


def test_a_providers_documented_reply_names_the_reason() -> None:
    diagnostic = "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP lookup"
    microsoft = _only(
        _dsn(status="5.1.10", diagnostic=diagnostic, remote="mx.mail.protection.outlook.com")
    )
    assert (microsoft.reason, microsoft.hard) == ("userunknown", True)
    assert (microsoft.evidence.rule, microsoft.evidence.detail) == ("provider", "Microsoft")
    elsewhere = _only(_dsn(status="5.1.10", diagnostic=diagnostic, remote="mx.example.com"))
    assert elsewhere.evidence.rule != "provider"


def _qmail_bounce(reply: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.acme.test\n"
        "To: rep@acme.test\n"
        "Subject: failure notice\n"
        "Received: (qmail 12345 invoked for bounce); 29 Apr 2024 12:34:56 -0000\n"
        "\n"
        "Hi. This is the qmail-send program at mx.acme.test.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n"
        "\n"
        "<z@example.com>:\n"
        "192.0.2.1 does not like recipient.\n"
        f"Remote host said: {reply}\n"
        "Giving up on 192.0.2.1.\n"
        "\n"
        "--- Below this line is a copy of the message.\n"
        "\n"
        "Message-ID: <msc.abc123@acme.test>\n"
        "To: z@example.com\n"
    ).encode()


def test_a_vendors_format_states_the_reason_and_the_command() -> None:
    r = _only(_qmail_bounce("550 sorry, no such mailbox"))
    assert (r.reason, r.hard) == ("userunknown", True)
    assert r.evidence.format == "qmail"
    result = bounceparse.parse(_qmail_bounce("550 sorry, no such mailbox"))
    assert (result.evidence.rule, result.evidence.format) == ("vendor-format", "qmail")


def test_holding_out_a_family_switches_its_rules_off() -> None:
    raw = _qmail_bounce("550 Message rejected")
    assert _only(raw).evidence.format == "qmail"
    with holding_out("lhost-qmail"):
        held_out = bounceparse.parse(raw)
    assert held_out.recipients[0].evidence.format == ""
    assert held_out.evidence.rule != "vendor-format"
    assert _only(raw).evidence.format == "qmail"  # back on after the block


# --- what is not a bounce --------------------------------------------------------------------


def test_a_newsletter_from_a_bounce_address_is_not_a_bounce() -> None:
    raw = (
        b"From: Shop <news@shop.example>\n"
        b"Return-Path: <bounces+8z2@esp.example>\n"
        b"To: rep@acme.test\n"
        b"Subject: Your delivery update\n"
        b"List-Unsubscribe: <mailto:unsubscribe@esp.example>\n"
        b"\n"
        b"Good news: nothing could not be delivered this week!\n"
        b"Questions? Write to help@shop.example or our partner sales@partner.example.\n"
    )
    result = bounceparse.parse(raw)
    assert (result.kind, result.recipients) == ("not_bounce", ())
    assert result.evidence.rule == "list-mail"


def test_a_mailing_list_post_about_a_failed_delivery_is_not_a_bounce() -> None:
    """A person asking a list why their mail bounced writes a bounce's subject and words; the
    list headers say it is list mail."""
    raw = (
        b"From: Sam <sam@member.example>\n"
        b"To: postfix-users@lists.example\n"
        b"List-Id: <postfix-users.lists.example>\n"
        b"Subject: Re: Undelivered Mail Returned to Sender\n"
        b"\n"
        b"My message to bob@partner.example could not be delivered. Any idea why?\n"
    )
    result = bounceparse.parse(raw)
    assert (result.kind, result.recipients) == ("not_bounce", ())
    assert result.evidence.rule == "list-mail"


def test_a_read_receipt_is_not_a_bounce() -> None:
    raw = (
        b"From: Mail System <postmaster@example.com>\n"
        b"To: rep@acme.test\n"
        b"Subject: Delivery notification: message read\n"
        b"MIME-Version: 1.0\n"
        b'Content-Type: multipart/report; report-type=disposition-notification; boundary="r"\n'
        b"\n"
        b"--r\n"
        b"Content-Type: text/plain\n"
        b"\n"
        b"Your message to z@example.com was displayed. It could not be delivered any faster.\n"
        b"\n"
        b"--r\n"
        b"Content-Type: message/disposition-notification\n"
        b"\n"
        b"Final-Recipient: rfc822; z@example.com\n"
        b"Disposition: manual-action/MDN-sent-manually; displayed\n"
        b"\n"
        b"--r--\n"
    )
    result = bounceparse.parse(raw)
    assert (result.kind, result.recipients) == ("not_bounce", ())
    assert result.evidence.rule == "receipt"


def test_a_report_of_successful_delivery_is_a_notice() -> None:
    raw = _dsn(
        status="2.0.0",
        action="delivered",
        diagnostic="250 2.0.0 OK",
        text="Your message was delivered to z@example.com.",
        subject="Delivery Status Notification (Success)",
    )
    result = bounceparse.parse(raw)
    assert (result.kind, result.recipients) == ("not_bounce", ())
    assert result.evidence.rule == "success-notice"


def test_an_auto_reply_that_quotes_a_bounce_is_an_auto_reply() -> None:
    raw = (
        b"From: Pat <pat@prospect.test>\n"
        b"To: rep@acme.test\n"
        b"Auto-Submitted: auto-replied\n"
        b"Subject: Automatic reply: Undeliverable: Hello\n"
        b"\n"
        b"I am out of the office until Monday.\n"
        b"> Your message could not be delivered to z@example.com.\n"
    )
    result = bounceparse.parse(raw)
    assert (result.kind, result.recipients) == ("auto_reply", ())
    assert result.evidence.as_dict() == {
        "source": "headers",
        "rule": "auto-reply",
        "detail": "Auto-Submitted: auto-replied",
        "format": "",
    }


# --- structure read from the bytes -----------------------------------------------------------


def test_a_bounce_forwarded_as_text_is_read_from_the_bounce_it_quotes() -> None:
    raw = (
        b"From: MAILER-DAEMON@isp.example\n"
        b"To: rep@acme.test\n"
        b"Subject: Undelivered Mail Returned to Sender\n"
        b"\n"
        b"I'm sorry to have to inform you that the message returned below could not be\n"
        b"delivered to one or more destinations. For help, contact <support@isp.example>.\n"
        b"\n"
        b"---------------------------------\n"
        b"From MAILER-DAEMON  Thu Apr 29 23:34:45 2024\n"
        b"Return-Path: <>\n"
        b"From: MAILER-DAEMON@relay.isp.example (Mail Delivery System)\n"
        b"Subject: Undelivered Mail Returned to Sender\n"
        b"\n"
        b"<z@example.com>: host mx.example.com[192.0.2.1] said: 550 5.1.1 <z@example.com>:\n"
        b"    Recipient address rejected: User unknown (in reply to RCPT TO command)\n"
    )
    r = _only(raw)
    assert (r.address, r.reason, r.status) == ("z@example.com", "userunknown", "5.1.1")


def test_a_report_that_lost_its_part_delimiters_still_reads() -> None:
    raw = (
        b"From: PMDF e-Mail Interconnect <MAILER-DAEMON@mx.example.net>\n"
        b"Subject: Delivery Notification: Delivery has failed\n"
        b'Content-Type: multipart/report; boundary="never-used"; report-type=delivery-status\n'
        b"\n"
        b"Your message cannot be delivered to the following recipients:\n"
        b"\n"
        b"Action: failed\n"
        b"Status: 5.0.0 (Remote SMTP server has rejected address)\n"
        b"Final-recipient: rfc822;z@example.com\n"
        b"Diagnostic-code: smtp; 550 5.1.1 User Unknown: z@example.com\n"
    )
    r = _only(raw)
    assert (r.address, r.reason, r.hard) == ("z@example.com", "userunknown", True)


def _encoded_text_bounce(text: bytes, *, content_type: bytes) -> bytes:
    encoded = base64.b64encode(text)
    return (
        b"From: MAILER-DAEMON@mx.acme.test\n"
        b"Subject: Undeliverable: Hello\n"
        b"Content-Type: " + content_type + b"\n"
        b"\n"
        b"--m\n"
        b"Content-Type: text/plain; charset=utf-8\n"
        b"Content-Transfer-Encoding: base64\n"
        b"\n" + encoded + b"\n"
        b"--m--\n"
    )


def test_a_parameter_list_continued_without_folding_still_names_the_boundary() -> None:
    """Some mailers end the Content-Type line at ";" and put boundary= on the next line without
    the folding space: the parts are still found (and the encoded one decoded)."""
    raw = _encoded_text_bounce(
        b"<z@example.com>: 550 5.2.2 Mailbox full, over quota\n",
        content_type=b'multipart/mixed;\nboundary="m"',
    )
    r = _only(raw)
    assert (r.address, r.reason, r.status) == ("z@example.com", "mailboxfull", "5.2.2")


def test_encoded_parts_are_decoded() -> None:
    raw = _encoded_text_bounce(
        b"<z@example.com>: 550 5.2.2 Mailbox full, over quota\n",
        content_type=b'multipart/mixed; boundary="m"',
    )
    r = _only(raw)
    assert (r.address, r.reason, r.status) == ("z@example.com", "mailboxfull", "5.2.2")


def test_the_parser_enforces_the_part_cap_itself() -> None:
    many = "".join(f"--p\nContent-Type: text/plain\n\npart {i}\n" for i in range(250))
    raw = f'Content-Type: multipart/mixed; boundary="p"\n\n{many}--p--\n'.encode()
    result = bounceparse.parse(raw)
    cap = bounceparse.Limits().max_parts
    assert (result.kind, result.error) == ("not_bounce", f"more than {cap} MIME parts")
    assert result.evidence.rule == "refused"


# --- evidence in words -----------------------------------------------------------------------


def test_every_reason_has_human_words() -> None:
    assert set(bounceparse.REASONS) <= set(bounceparse.LABELS)
    assert bounceparse.label("userunknown") == "Mailbox does not exist"
    assert bounceparse.label("mailboxfull") == "Mailbox full"
    assert bounceparse.label("blocked") == "Blocked by the receiving server"
    assert bounceparse.label("spamdetected") == "Blocked as spam"
    assert all(bounceparse.label(r) != r for r in bounceparse.REASONS)


def test_describe_says_how_each_verdict_was_reached() -> None:
    status = _only(_dsn(status="5.1.1", diagnostic="550 5.1.1 <z@example.com>... User unknown"))
    assert bounceparse.describe(status) == (
        'Hard: the status 5.1.1 means "mailbox does not exist" in the delivery report.'
    )
    phrase = _only(_dsn(status="5.0.0", diagnostic="552 mailbox full"))
    assert bounceparse.describe(phrase) == (
        "Soft: the receiving server said 552 'mailbox full' in the delivery report."
    )
    diagnostic = "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP lookup"
    provider = _only(
        _dsn(status="5.1.10", diagnostic=diagnostic, remote="mx.mail.protection.outlook.com")
    )
    assert bounceparse.describe(provider) == (
        'Hard: Microsoft\'s documented reply 550 5.1.10 means "mailbox does not exist"'
        " in the delivery report."
    )
    vendor = _only(_qmail_bounce("550 sorry, no such mailbox"))
    assert bounceparse.describe(vendor).startswith("Hard: ")
    hinted = bounceparse.describe_failure("z@example.com", "bounced", hint="blocked")
    assert hinted.evidence.as_dict() == {
        "source": "esp",
        "rule": "hint",
        "detail": "blocked",
        "format": "",
    }
    assert bounceparse.describe(hinted) == (
        'Soft: the sending service classed it as "blocked by the receiving server"'
        " in the sending service's bounce event."
    )


# --- parse_bounces without Django ------------------------------------------------------------


def test_parse_bounces_answers_without_django_and_prints_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "b.eml").write_bytes(_dsn(status="5.1.1", diagnostic="550 5.1.1 user unknown"))
    (folder / "a.eml").write_bytes(b"From: friend@example.com\nSubject: lunch?\n\nSee you.\n")
    (folder / "c.eml").write_bytes(_qmail_bounce("550 sorry, no such mailbox"))
    missing = str(tmp_path / "missing.eml")
    call_command("parse_bounces", str(folder), missing)
    through_django = capsys.readouterr().out
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    fast = subprocess.run(
        [sys.executable, "-X", "importtime", "manage.py", "parse_bounces", str(folder), missing],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert fast.stdout == through_django
    assert [json.loads(line)["file"] for line in fast.stdout.splitlines()] == [
        "a.eml",
        "b.eml",
        "c.eml",
        "missing.eml",
    ]
    imported = [line.rsplit("|", 1)[-1].strip() for line in fast.stderr.splitlines()]
    assert "bounceparse.cli" in imported
    assert not [name for name in imported if name.startswith("django")]
    # An option goes to Django's own command: its help, not the parser.
    helped = subprocess.run(
        [sys.executable, "manage.py", "parse_bounces", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Parse bounce messages" in helped.stdout

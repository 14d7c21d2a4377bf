"""Inbox scanning against a real Dovecot on loopback: XOAUTH2, read-only, resumable, size-capped."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
import responses
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import bounceparse
from accounts.models import Tenant, User
from bounces import inbox, services
from bounces.models import Attribution, BounceEvent, InboxCursor
from channels import services as channel_services
from channels.kinds import ChannelKind
from channels.models import Channel, ChannelStatus, Identity
from msc_admin.devtls import Certificates
from msc_admin.stored import read
from sending.models import Message, MessageStatus
from tests.bounces.conftest import corpus, dsn_for, mark_sent
from tests.mailservers import ImapServer, dripping_server
from tests.sending.conftest import gmail_channel, queue_message

pytestmark = pytest.mark.django_db

TOKEN = "imap-token-1"
MAILBOX = "rep@acme.test"

ORDINARY = b"""From: Pat Prospect <pat@prospect.test>
To: rep@acme.test
Subject: Re: Hello
Message-ID: <reply-1@prospect.test>
Date: Mon, 23 Nov 2026 09:00:00 +0000

Thanks, let's talk on Tuesday.
"""


@pytest.fixture
def gmail(acme: Tenant, rep_user: User, dovecot: ImapServer) -> Channel:
    dovecot.add_user(MAILBOX, TOKEN)
    channel = gmail_channel(acme, rep_user, token=TOKEN)
    identity = channel_services.identity_ensure_default(user=rep_user, tenant=acme)
    identity.channel = channel
    identity.save()
    return channel


def _sent(acme: Tenant, rep_user: User, to: str) -> Message:
    identity = Identity.objects.get(user=rep_user, is_default=True)
    return mark_sent(queue_message(acme, rep_user, identity, to=to))


def _flags(dovecot: ImapServer) -> list[bytes]:
    with dovecot.login(MAILBOX, TOKEN) as imap:
        imap.select("INBOX", readonly=True)
        _typ, data = imap.fetch("1:*", "(FLAGS)")
    return [line for line in data if isinstance(line, bytes)]


def test_a_scan_records_the_bounces_among_ordinary_mail_and_changes_nothing(
    acme: Tenant, rep_user: User, gmail: Channel, dovecot: ImapServer
) -> None:
    first = _sent(acme, rep_user, "pat@prospect.test")
    second = _sent(acme, rep_user, "lee@prospect.test")
    dovecot.deliver(
        MAILBOX,
        TOKEN,
        ORDINARY,
        dsn_for(first, own_id="<b1@mx.test>", crlf=True),
        dsn_for(second, message_id=None, product_header=False, own_id="<b2@mx.test>"),
        ORDINARY.replace(b"reply-1", b"reply-2"),
    )
    report = inbox.scan(gmail.pk)
    assert report.ok, report.problem
    assert (report.read, report.found, report.skipped) == (4, 2, 0)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == MessageStatus.BOUNCED
    ways = dict(BounceEvent.objects.values_list("recipient", "attributed_by"))
    assert ways == {"pat@prospect.test": Attribution.MESSAGE_ID, "lee@prospect.test": "recipient"}
    assert set(BounceEvent.objects.values_list("channel", flat=True)) == {gmail.pk}

    cursor = InboxCursor.objects.get(channel=gmail)
    assert cursor.last_uid == 4 and cursor.uidvalidity and cursor.ok is True
    assert "4 new messages read, 2 bounces recorded" in read(cursor.message)
    # Read-only: every message is still there, and none was marked as read.
    flags = _flags(dovecot)
    assert len(flags) == 4 and not any(b"\\Seen" in line for line in flags)

    again = inbox.scan(gmail.pk)
    assert (again.read, again.found) == (0, 0)
    dovecot.deliver(MAILBOX, TOKEN, dsn_for(None, recipient="x@nowhere.test", own_id="<b3@m>"))
    later = inbox.scan(gmail.pk)
    assert (later.read, later.found) == (1, 1)
    assert BounceEvent.objects.get(recipient="x@nowhere.test").message is None  # kept, unmatched


def test_corpus_bounces_mixed_with_other_mail_are_recorded_and_nothing_else(
    acme: Tenant, gmail: Channel, dovecot: ImapServer
) -> None:
    emails = sorted((corpus() / "emails").glob("*.eml"))
    sample = (
        [p for p in emails if p.name.startswith("lhost-postfix-")][:6]
        + [p for p in emails if p.name.startswith("lhost-exim-")][:4]
        + [p for p in emails if p.name.startswith(("arf-", "rfc3834-"))][:6]
    )
    raws = [path.read_bytes() for path in sample]
    dovecot.deliver(MAILBOX, TOKEN, *raws, ORDINARY)
    expected = set()
    for raw in raws:
        parsed = bounceparse.parse(raw)
        if parsed.kind == bounceparse.BOUNCE:
            expected |= {r.address for r in parsed.recipients}
    assert len(expected) >= 8

    report = inbox.scan(gmail.pk)
    assert report.read == len(raws) + 1
    assert set(BounceEvent.objects.values_list("recipient", flat=True)) == expected


def test_messages_over_the_cap_are_skipped_by_size_before_any_fetch(
    acme: Tenant, rep_user: User, gmail: Channel, dovecot: ImapServer, settings
) -> None:
    settings.MSC_SCAN_MAX_BYTES = 20_000
    message = _sent(acme, rep_user, "pat@prospect.test")
    huge = dsn_for(message, own_id="<huge@m>").replace(
        b"--B--", b"--B\nContent-Type: text/plain\n\n" + b"x" * 400 + b"\n" * 200 + b"--B--"
    )
    huge = huge + b"\n" + (b"y" * 76 + b"\n") * 2000  # about 150 kB
    dovecot.deliver(MAILBOX, TOKEN, huge, ORDINARY)
    report = inbox.scan(gmail.pk)
    assert (report.read, report.skipped, report.found) == (1, 1, 0)
    assert "1 over 19.5\xa0KB skipped" in report.summary  # the cap is stated usefully…
    assert InboxCursor.objects.get(channel=gmail).last_uid == 2  # …and the scan moved past it
    # Dovecot's own count of what it sent: far less than the skipped message.
    log = (dovecot.root / "dovecot.log").read_text()
    sent_bytes = sum(int(n) for n in re.findall(r"Logged out in=\d+ out=(\d+)", log)[-1:])
    assert 0 < sent_bytes < len(huge) // 10


def test_a_renumbered_folder_is_read_again_without_counting_twice(
    acme: Tenant, rep_user: User, gmail: Channel, dovecot: ImapServer
) -> None:
    message = _sent(acme, rep_user, "pat@prospect.test")
    dovecot.deliver(MAILBOX, TOKEN, dsn_for(message, own_id="<b1@m>"), ORDINARY)
    assert inbox.scan(gmail.pk).found == 1
    old = InboxCursor.objects.get(channel=gmail).uidvalidity
    dovecot.renumber(MAILBOX)
    report = inbox.scan(gmail.pk)
    assert (report.read, report.found, report.duplicates) == (2, 0, 1)
    assert InboxCursor.objects.get(channel=gmail).uidvalidity != old
    assert BounceEvent.objects.count() == 1


def test_a_scan_killed_mid_way_resumes_after_the_last_committed_batch(
    acme: Tenant, rep_user: User, gmail: Channel, dovecot: ImapServer, monkeypatch
) -> None:
    messages = [_sent(acme, rep_user, f"p{i}@prospect.test") for i in range(5)]
    dovecot.deliver(MAILBOX, TOKEN, *[dsn_for(m, own_id=f"<b{m.pk}@m>") for m in messages])
    monkeypatch.setattr(inbox, "BATCH", 2)
    real_ingest = services.ingest_many
    calls = {"n": 0}

    def dies_in_the_second_batch(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise SystemExit("worker killed")  # not an Exception: nothing in the scan catches it
        return real_ingest(**kwargs)

    monkeypatch.setattr(services, "ingest_many", dies_in_the_second_batch)
    with pytest.raises(SystemExit):
        inbox.scan(gmail.pk)
    assert InboxCursor.objects.get(channel=gmail).last_uid == 2
    assert BounceEvent.objects.count() == 2
    assert not inbox.is_running(gmail.pk)  # the lock went with the worker

    monkeypatch.setattr(services, "ingest_many", real_ingest)
    report = inbox.scan(gmail.pk)
    assert (report.read, report.found) == (3, 3)
    assert Message.objects.filter(status=MessageStatus.BOUNCED).count() == 5
    assert BounceEvent.objects.count() == 5


def test_a_refused_token_or_a_dead_server_is_reported_and_sending_carries_on(
    acme: Tenant, rep_user: User, gmail: Channel, dovecot: ImapServer, settings
) -> None:
    Channel.objects.filter(pk=gmail.pk).update(token_expires_at=timezone.now() + timedelta(hours=1))
    gmail.set_secret({"access_token": "not-the-token", "refresh_token": "r"})
    gmail.save()
    report = inbox.scan(gmail.pk)
    assert not report.ok and report.problem.startswith("The mailbox refused the sign-in")
    cursor = InboxCursor.objects.get(channel=gmail)
    assert cursor.ok is False and "refused the sign-in" in cursor.message
    gmail.refresh_from_db()
    assert gmail.status == ChannelStatus.ACTIVE  # reading bounces failing does not stop sending

    settings.MSC_GMAIL_IMAP = "localhost:9"
    report = inbox.scan(gmail.pk)
    assert not report.ok and report.problem.startswith("Could not reach localhost:9")


def test_an_imap_server_dripping_its_greeting_is_cut_off_at_the_deadline(
    acme: Tenant, rep_user: User, certs: Certificates, settings
) -> None:
    settings.MSC_OUTBOUND_TIMEOUT = 1
    settings.MSC_OUTBOUND_DEADLINE = 2
    channel = gmail_channel(acme, rep_user, token=TOKEN)
    with dripping_server(b"* OK " + b"i" * 200 + b"\r\n", cert=certs.trusted) as server:
        settings.MSC_GMAIL_IMAP = f"{server.host}:{server.port}"
        started = time.monotonic()
        report = inbox.scan(channel.pk)
        took = time.monotonic() - started
    assert took < 3, took
    assert server.dripped >= 3  # answering all along: the deadline ended it, not a read timeout
    said = "localhost did not finish the conversation within 2 s; will try again."
    assert not report.ok and report.problem == said
    cursor = InboxCursor.objects.get(channel=channel)
    assert cursor.ok is False and cursor.message == said
    assert not inbox.is_running(channel.pk)


@responses.activate
def test_exchange_online_reads_with_its_own_imap_token(
    acme: Tenant, rep_user: User, dovecot: ImapServer, settings
) -> None:
    providers = {**settings.SOCIALACCOUNT_PROVIDERS}
    providers["microsoft"] = {
        **providers["microsoft"],
        "APPS": [{"client_id": "entra-app", "secret": "shh", "key": ""}],
    }
    settings.SOCIALACCOUNT_PROVIDERS = providers
    token_url = "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
    responses.post(token_url, json={"access_token": "outlook-imap", "expires_in": 3600})
    dovecot.add_user(MAILBOX, "outlook-imap")
    channel = gmail_channel(acme, rep_user, token="graph-token")
    Channel.objects.filter(pk=channel.pk).update(
        kind=ChannelKind.EXCHANGE_ONLINE,
        config={"provider": "microsoft", "uid": "m-1", "reading": "imap"},
    )
    dovecot.deliver(MAILBOX, "outlook-imap", dsn_for(None, recipient="gone@far.test"))

    report = inbox.scan(channel.pk)
    assert report.ok and report.found == 1, report.problem
    grant = parse_qs(responses.calls[0].request.body)
    assert grant["scope"] == ["https://outlook.office.com/IMAP.AccessAsUser.All offline_access"]
    channel.refresh_from_db()
    secret = channel.read_secret()
    assert secret["access_token"] == "graph-token"  # the sending token is untouched
    assert secret["imap_access_token"] == "outlook-imap"
    assert inbox.scan(channel.pk).ok and len(responses.calls) == 1  # the IMAP token is reused


@pytest.mark.django_db(
    transaction=True
)  # dispatch_scans enqueues after commit, in autocommit as beat runs it
def test_only_gmail_and_exchange_online_inboxes_are_due_for_scanning(
    acme: Tenant, rep_user: User, gmail: Channel, team_channel: Channel, settings
) -> None:
    assert inbox.due_channels() == [gmail.pk]
    assert not inbox.scan(team_channel.pk).ok
    inbox.dispatch_scans()  # in-process here; a worker in production
    assert InboxCursor.objects.get(channel=gmail).scanned_at is not None
    assert inbox.due_channels() == []
    later = timezone.now() + timedelta(seconds=settings.MSC_SCAN_EVERY_SECONDS + 1)
    assert inbox.due_channels(later) == [gmail.pk]
    Channel.objects.filter(pk=gmail.pk).update(status=ChannelStatus.NEEDS_ATTENTION)
    assert inbox.due_channels(later) == []


@pytest.mark.django_db(transaction=True)  # a request path: the scan is enqueued after commit
def test_scan_now_from_the_settings_page(
    acme: Tenant, rep_user: User, gmail: Channel, dovecot: ImapServer, rep_client: Client,
    admin_client: Client,
) -> None:  # fmt: skip
    page = rep_client.get(reverse("channels:overview")).content.decode()
    assert "Scan now" in page and "Inbox: not scanned yet" in page
    assert "Read by IMAP: Inbox." in page  # this mailbox's admin chose IMAP
    assert (
        "Exchange on-premises" in page and "the Inbox and Junk Email are read through EWS" in page
    )
    dovecot.deliver(MAILBOX, TOKEN, dsn_for(None, recipient="gone@far.test"))
    url = reverse("bounces:scan", args=[gmail.pk])
    answer = rep_client.post(url, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    assert "1 new message read, 1 bounce recorded." in answer.content.decode()
    page = rep_client.get(reverse("channels:overview")).content.decode()
    assert "1 bounce recorded" in page
    # Another member's mailbox is not theirs to scan, even for an admin.
    assert admin_client.post(url).status_code == 404

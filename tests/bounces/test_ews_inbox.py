"""Exchange on-premises inboxes read through EWS, against the stand-in EWS server on loopback
(``tests.ewsserver``): Inbox and Junk Email, read-only, size-capped, resumable, counted once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from accounts.models import Tenant, User
from bounces import inbox
from bounces.models import BounceEvent, InboxCursor, ResponseEvent, ResponseKind
from channels.models import Channel, Identity
from msc_admin.devtls import Certificates
from msc_admin.stored import read
from sending.models import Message, MessageStatus
from tests.bounces.conftest import dsn_for, mark_sent
from tests.ewsserver import EwsServer, ews_server
from tests.sending.conftest import queue_message
from tests.sending.test_exchange_onprem_send import USER, onprem_channel

pytestmark = pytest.mark.django_db

# Operations that would change the mailbox; the scan must never send one.
WRITES = {"CreateItem", "UpdateItem", "MoveItem", "DeleteItem", "MarkAsJunk", "SendItem"}


@pytest.fixture
def exchange(certs: Certificates, tmp_path: Path) -> Iterator[EwsServer]:
    with ews_server(certs.trusted, username=USER, password="pw", tmp=tmp_path) as server:
        yield server


@pytest.fixture
def onprem(acme: Tenant, rep_user: User, exchange: EwsServer) -> Channel:
    channel, _ = onprem_channel(acme, rep_user, exchange)
    return channel


def _sent(acme: Tenant, rep_user: User, to: str) -> Message:
    identity = Identity.objects.get(user=rep_user, is_default=True)
    return mark_sent(queue_message(acme, rep_user, identity, to=to))


def _reply_to(message: Message) -> bytes:
    return (
        f"From: Pat <{message.to_email}>\r\nTo: {message.from_email}\r\nSubject: Re: Hello\r\n"
        f"Message-ID: <reply-{message.pk}@prospect.test>\r\nIn-Reply-To: {message.message_id}\r\n"
        f"References: {message.message_id}\r\n\r\nYes, let's talk.\r\n"
    ).encode()


def test_a_scan_reads_inbox_and_junk_through_ews_and_changes_nothing(
    acme: Tenant, rep_user: User, onprem: Channel, exchange: EwsServer
) -> None:
    first = _sent(acme, rep_user, "pat@prospect.test")
    second = _sent(acme, rep_user, "lee@prospect.test")
    exchange.deliver("junkemail", dsn_for(first, own_id="<b1@mx.test>", crlf=True))
    exchange.deliver("inbox", _reply_to(second))
    report = inbox.scan(onprem.pk)
    assert report.ok, report.problem
    assert (report.read, report.found, report.replies) == (2, 1, 1)
    first.refresh_from_db()
    assert first.status == MessageStatus.BOUNCED
    (event,) = BounceEvent.objects.all()
    assert (event.message_id, event.channel_id, event.recipient) == (
        first.pk,
        onprem.pk,
        "pat@prospect.test",
    )
    assert ResponseEvent.objects.get().kind == ResponseKind.REPLY
    # Read-only: listed and fetched, nothing else; both messages are still where they were.
    assert not WRITES & set(exchange.operations)
    assert {"FindItem", "GetItem"} <= set(exchange.operations)
    assert len(exchange.folders["junkemail"]) == len(exchange.folders["inbox"]) == 1
    cursor = InboxCursor.objects.get(channel=onprem)
    assert cursor.ok is True and cursor.uidvalidity == 1 and cursor.last_uid > 0
    assert "2 new messages read, 1 bounce recorded, 1 reply" in read(cursor.message)
    # Nothing new: nothing read again.
    again = inbox.scan(onprem.pk)
    assert (again.read, again.found, again.duplicates) == (0, 0, 0)
    assert BounceEvent.objects.count() == 1


def test_mail_received_in_the_second_the_last_scan_ended_in_is_still_read_once(
    acme: Tenant, rep_user: User, onprem: Channel, exchange: EwsServer
) -> None:
    """EWS gives whole seconds: a bounce received in the very second the previous scan ended
    in is read, and the one read before it is not counted twice."""
    instant = datetime.now(UTC).replace(microsecond=0)
    first = _sent(acme, rep_user, "pat@prospect.test")
    second = _sent(acme, rep_user, "lee@prospect.test")
    exchange.deliver("inbox", dsn_for(first, own_id="<b1@mx.test>"), instant)
    assert inbox.scan(onprem.pk).found == 1
    exchange.deliver("junkemail", dsn_for(second, own_id="<b2@mx.test>"), instant)
    later = inbox.scan(onprem.pk)
    assert later.ok and later.found == 1
    assert BounceEvent.objects.count() == 2
    assert Message.objects.filter(status=MessageStatus.BOUNCED).count() == 2
    assert inbox.scan(onprem.pk).read == 0


def test_messages_over_the_cap_are_skipped_by_their_size_before_any_fetch(
    acme: Tenant, rep_user: User, onprem: Channel, exchange: EwsServer, settings
) -> None:
    settings.MSC_SCAN_MAX_BYTES = 10_000
    exchange.deliver("inbox", b"Subject: big\r\n\r\n" + b"x" * 20_000)
    report = inbox.scan(onprem.pk)
    assert report.ok and (report.read, report.skipped) == (0, 1)
    assert "GetItem" not in exchange.operations
    assert InboxCursor.objects.get(channel=onprem).skipped == 1


def test_a_refused_password_is_reported_on_the_scan(
    acme: Tenant, rep_user: User, exchange: EwsServer
) -> None:
    channel, _ = onprem_channel(acme, rep_user, exchange, password="wrong")
    exchange.deliver("inbox", dsn_for(None, recipient="x@nowhere.test"))
    report = inbox.scan(channel.pk)
    assert not report.ok
    assert "Exchange refused the user name or password" in report.problem
    cursor = InboxCursor.objects.get(channel=channel)
    assert cursor.ok is False and cursor.last_uid == 0
    assert not BounceEvent.objects.exists()


@pytest.mark.django_db(transaction=True)  # dispatch_scans enqueues after commit, as beat runs it
def test_an_on_premises_inbox_is_due_for_scanning_like_the_others(
    acme: Tenant, rep_user: User, onprem: Channel, exchange: EwsServer
) -> None:
    exchange.deliver("junkemail", dsn_for(None, recipient="gone@far.test"))
    assert inbox.due_channels() == [onprem.pk]
    inbox.dispatch_scans()  # in-process here; a worker in production
    cursor = InboxCursor.objects.get(channel=onprem)
    assert cursor.ok is True and cursor.found == 1
    assert inbox.due_channels() == []

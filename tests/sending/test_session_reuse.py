"""A run of one channel's messages goes over one SMTP session (RSET between messages), and
every guarantee of the one-message send still holds: one claim each, the hand-over recorded,
outcomes written only under the claim, each message delivered once even when the connection
drops mid-run."""

from __future__ import annotations

from email import message_from_bytes
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Tenant, User
from channels.models import Identity
from sending import pipeline
from sending.models import Message, MessageStatus
from tests.mailservers import SmtpServer
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db(transaction=True)


def _queue(tenant: Tenant, user: User, identity: Identity, n: int) -> list[Message]:
    """Queued and due, their tasks not run (the test runs the worker's side itself)."""
    with mock.patch("msc_admin.enqueue.after_commit"):
        return [queue_message(tenant, user, identity, to=f"p{i}@prospect.test") for i in range(n)]


def _delivered(relay: SmtpServer) -> list[str]:
    """The recipients of what the relay accepted, in order."""
    return [entry["to"][0] for entry in relay.received.messages]


def test_a_run_sends_the_channels_due_messages_over_one_session(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    messages = _queue(acme, rep_user, rep_identity, 12)
    assert pipeline.send_run(messages[0].pk) == "sent"
    assert _delivered(relay) == [f"p{i}@prospect.test" for i in range(12)]
    assert len(relay.received.auth_attempts) == 1  # one TCP + TLS + AUTH for all twelve
    rows = Message.objects.filter(pk__in=[m.pk for m in messages])
    assert {m.status for m in rows} == {MessageStatus.SENT}
    assert all(m.attempts == 1 and m.handed_over_at and m.claim_token for m in rows)
    # Each went with its own Message-ID; a second task for one of them finds it sent.
    ids = {message_from_bytes(e["data"])["Message-ID"] for e in relay.received.messages}
    assert ids == {m.message_id for m in rows}
    assert pipeline.send_run(messages[5].pk) == "skipped"
    assert len(relay.received.messages) == 12


def test_each_message_of_a_run_is_claimed_on_its_own(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    messages = _queue(acme, rep_user, rep_identity, 3)
    with CaptureQueriesContext(connection) as queries:
        pipeline.send_run(messages[0].pk)
    claims = [q["sql"] for q in queries.captured_queries if "claim_token" in q["sql"][:200]]
    # The first by its id, each next one by the channel's queue, one UPDATE each.
    assert sum(sql.startswith('UPDATE "sending_message" SET "status"') for sql in claims) == 1
    assert sum("FOR UPDATE SKIP LOCKED" in sql for sql in claims) == 3  # the last finds none
    assert len({m.claim_token for m in Message.objects.all()}) == 3


def test_the_session_is_replaced_after_its_message_cap(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer, settings
) -> None:
    settings.MSC_SEND_SESSION_MESSAGES = 5
    messages = _queue(acme, rep_user, rep_identity, 12)
    pipeline.send_run(messages[0].pk)
    # A run ends at the cap: five went, the rest wait for the next run (their own tasks).
    assert len(relay.received.messages) == 5
    pipeline.send_run(messages[5].pk)
    pipeline.send_run(messages[10].pk)
    assert len(relay.received.messages) == 12
    assert len(relay.received.auth_attempts) == 3
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 12


def test_a_run_stops_at_a_held_message_and_leaves_the_rest_queued(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    messages = _queue(acme, rep_user, rep_identity, 6)
    assert relay.handler is not None
    relay.handler.replies.extend(["250 ok", "250 ok", "421 4.7.0 Try again later"])
    pipeline.send_run(messages[0].pk)
    # The third was pushed back (the channel waits); nothing after it was claimed.
    assert _delivered(relay) == ["p0@prospect.test", "p1@prospect.test"]
    statuses = list(Message.objects.order_by("pk").values_list("status", flat=True))
    assert statuses == [MessageStatus.SENT] * 2 + [MessageStatus.QUEUED] * 4
    assert Message.objects.get(pk=messages[2].pk).attempts == 1


def test_a_connection_dropped_mid_run_delivers_each_message_once(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    """The server hangs up after accepting the 4th message: the 5th goes over a new session.
    It breaks the connection when the 8th message's content has arrived: that one may have
    been delivered, so it is flagged uncertain and never resent; the run goes on over a new
    session with the rest."""
    assert relay.handler is not None
    relay.handler.close_after.add(4)
    relay.handler.cut_at.add(8)
    messages = _queue(acme, rep_user, rep_identity, 10)
    pipeline.send_run(messages[0].pk)
    delivered = _delivered(relay)
    expected = [f"p{i}@prospect.test" for i in range(10) if i != 7]
    assert delivered == expected  # each once, in order, none twice
    cut = Message.objects.get(pk=messages[7].pk)
    assert cut.status == MessageStatus.FAILED and cut.uncertain, cut.status_detail
    assert "may have been delivered" in cut.status_detail
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 9
    assert Message.objects.filter(attempts__gt=1).count() == 0
    assert len(relay.received.auth_attempts) == 3  # the first session and two new ones
    # Nothing is left to resend.
    assert pipeline.dispatch_due() == 0

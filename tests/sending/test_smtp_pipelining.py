"""SMTP PIPELINING (RFC 2920): to a server that offers it, MAIL, RCPT and DATA go in one write
and their replies are read in order; the content goes only after the 354, the hand-over
committed before it. A server that does not offer it gets one command per reply, as before."""

from __future__ import annotations

from unittest import mock

import pytest

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
    return [entry["to"][0] for entry in relay.received.messages]


@pytest.mark.parametrize("offered", [True, False], ids=["pipelining", "one-by-one"])
def test_a_run_sends_each_envelope_in_one_write_only_when_the_server_offers_it(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer, offered: bool
) -> None:
    assert relay.handler is not None
    relay.handler.pipelining = offered
    messages = _queue(acme, rep_user, rep_identity, 5)
    assert pipeline.send_run(messages[0].pk) == "sent"
    assert _delivered(relay) == [f"p{i}@prospect.test" for i in range(5)]
    # Each RCPT arrived with DATA behind it in the same write, or each waited for its reply.
    assert relay.received.pipelined == (5 if offered else 0)
    assert len(relay.received.auth_attempts) == 1 and relay.received.resets == 0
    rows = Message.objects.filter(pk__in=[m.pk for m in messages])
    assert {m.status for m in rows} == {MessageStatus.SENT}
    assert all(m.attempts == 1 and m.handed_over_at and m.sent_at for m in rows)


@pytest.mark.parametrize("offered", [True, False], ids=["pipelining", "one-by-one"])
def test_a_refused_recipient_sends_no_content_and_the_next_group_resets_first(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer, offered: bool
) -> None:
    """RCPT refused inside a group: DATA is refused too (503), nothing of the message goes, it
    fails with the server's words and was never handed over; the next message's group starts
    with RSET over the same session."""
    assert relay.handler is not None
    relay.handler.pipelining = offered
    relay.handler.refused.add("p1@prospect.test")
    messages = _queue(acme, rep_user, rep_identity, 4)
    pipeline.send_run(messages[0].pk)
    assert _delivered(relay) == ["p0@prospect.test", "p2@prospect.test", "p3@prospect.test"]
    assert relay.handler.seen == 3  # no content arrived for the refused one
    assert relay.received.resets == 1
    assert len(relay.received.auth_attempts) == 1
    assert relay.received.pipelined == (4 if offered else 0)
    refused = Message.objects.get(pk=messages[1].pk)
    assert refused.status == MessageStatus.FAILED and "5.1.1" in refused.detail_text
    assert refused.handed_over_at is None and refused.smtp_code == "550"
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 3
    assert Message.objects.filter(attempts__gt=1).count() == 0


def test_a_refusal_of_the_content_under_pipelining_is_the_servers_answer(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    """The reply to the content is read after it, as without pipelining: a 550 there fails
    that message (handed over: its content went), and the run goes on."""
    assert relay.handler is not None
    relay.handler.replies.extend(["250 ok", "550 5.7.1 Content refused"])
    messages = _queue(acme, rep_user, rep_identity, 3)
    pipeline.send_run(messages[0].pk)
    assert _delivered(relay) == ["p0@prospect.test", "p2@prospect.test"]
    refused = Message.objects.get(pk=messages[1].pk)
    assert refused.status == MessageStatus.FAILED and "5.7.1" in refused.detail_text
    assert refused.handed_over_at is not None and not refused.uncertain
    assert relay.received.pipelined == 3 and relay.received.resets == 0

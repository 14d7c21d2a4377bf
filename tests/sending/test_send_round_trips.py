"""What a send of a run costs in round trips to PostgreSQL, with every guarantee kept: two
statements a message (the hand-over, committed before its content goes; its outcome, which
claims the channel's next message in the same statement), and one SMTP write for MAIL, RCPT and
DATA. What stops a send (suppression, blocked domain, the team's limits) is read by the claim,
for each message on its own. In autocommit, as a worker runs."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Tenant, User
from channels.models import BlockedDomain, Identity
from sending import pipeline
from sending.models import Message, MessageStatus, Suppression
from tests.mailservers import SmtpServer
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db(transaction=True)


def _queue(tenant: Tenant, user: User, identity: Identity, *to: str) -> list[Message]:
    """Queued and due, their tasks not run (the test runs the worker's side itself)."""
    with mock.patch("msc_admin.enqueue.after_commit"):
        return [queue_message(tenant, user, identity, to=address) for address in to]


def _delivered(relay: SmtpServer) -> list[str]:
    return [entry["to"][0] for entry in relay.received.messages]


def test_a_run_costs_two_statements_and_one_envelope_write_a_message(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    to = [f"p{i}@prospect.test" for i in range(10)]
    messages = _queue(acme, rep_user, rep_identity, *to)
    with CaptureQueriesContext(connection) as queries:
        assert pipeline.send_run(messages[0].pk) == "sent"
    sql = [q["sql"] for q in queries.captured_queries]
    # The first claim (by id); then per message its hand-over and its outcome, which claims the
    # next one (the last finds none due).
    assert len(sql) == 1 + 2 * 10, "\n".join(s[:80] for s in sql)
    assert sum("SET handed_over_at = %s" in s for s in sql) == 10
    assert sum("WITH done AS" in s and "FOR UPDATE SKIP LOCKED" in s for s in sql) == 10
    assert _delivered(relay) == to
    assert relay.received.pipelined == 10  # MAIL, RCPT and DATA in one write each
    rows = Message.objects.filter(pk__in=[m.pk for m in messages])
    assert {m.status for m in rows} == {MessageStatus.SENT}
    assert all(m.attempts == 1 and m.handed_over_at and m.sent_at for m in rows)
    assert len({m.claim_token for m in rows}) == 10  # each claimed on its own


def test_what_stops_a_send_is_read_for_each_message_by_its_claim(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    """A suppressed address and a blocked parent domain in the middle of a run: each message
    is checked on its own by what its claim read, the address and domain as Python
    normalises them."""
    messages = _queue(
        acme,
        rep_user,
        rep_identity,
        "p0@prospect.test",
        "Gone@Prospect.TEST",
        "p2@prospect.test",
        "ceo@mail.Blocked.test",
        "nu@prospect.test",
        "p4@prospect.test",
    )
    # Listed after they were queued: only the send's own look-up can stop them.
    assert {m.status for m in messages} == {MessageStatus.QUEUED}
    # Composing refuses such an address; a row that holds one all the same is looked up as
    # before the claim read them (PostgreSQL's lower() may keep the Ñ).
    Message.objects.filter(pk=messages[4].pk).update(to_email="Ñu@prospect.test")
    for address in ("gone@prospect.test", "ñu@prospect.test"):
        Suppression.objects.create(tenant=acme, address=address, reason="complaint")
    BlockedDomain.objects.create(tenant=acme, domain="blocked.test")
    pipeline.send_run(messages[0].pk)
    assert _delivered(relay) == ["p0@prospect.test", "p2@prospect.test", "p4@prospect.test"]
    rows = {m.to_email: m for m in Message.objects.all()}
    assert rows["Gone@Prospect.TEST"].status == MessageStatus.SUPPRESSED
    assert rows["Ñu@prospect.test"].status == MessageStatus.SUPPRESSED
    assert rows["ceo@mail.Blocked.test"].status == MessageStatus.FAILED
    assert "blocked.test" in rows["ceo@mail.Blocked.test"].detail_text
    assert all(
        rows[m].handed_over_at is None for m in ("Gone@Prospect.TEST", "ceo@mail.Blocked.test")
    )


def test_an_outcome_whose_claim_was_lost_claims_no_next_message(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    first, second = _queue(acme, rep_user, rep_identity, "a@prospect.test", "b@prospect.test")
    claimed = pipeline.claim(first.pk)
    assert claimed is not None
    # The lease ran out; reconcile requeued it and another worker claimed it.
    Message.objects.filter(pk=first.pk).update(claim_token="another-worker")
    run = pipeline._Run()
    pipeline._Attempt(*claimed, run).sent("250 2.0.0 Ok: queued")
    assert run.looked and run.next is None
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == MessageStatus.SENDING and first.claim_token == "another-worker"
    assert second.status == MessageStatus.QUEUED and second.claim_token == ""


class _Killed(BaseException):
    """The worker process dies (SIGKILL, OOM): nothing of ours runs after it."""


def test_a_worker_dying_after_an_outcome_leaves_the_next_message_to_be_sent_once(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    """The outcome of the first message and the claim of the second commit together; the
    worker dies before the second's hand-over. The second is claimed and never handed over:
    once its lease is over ``reconcile_stuck`` queues it again, and it goes out once."""
    messages = _queue(acme, rep_user, rep_identity, "p0@x.test", "p1@x.test", "p2@x.test")
    real = pipeline._checked
    calls = 0

    def dies_at_the_second(*args: object) -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise _Killed()
        return real(*args)  # type: ignore[arg-type]

    with mock.patch.object(pipeline, "_checked", dies_at_the_second), pytest.raises(_Killed):
        pipeline.send_run(messages[0].pk)
    rows = [Message.objects.get(pk=m.pk) for m in messages]
    assert [m.status for m in rows] == [
        MessageStatus.SENT,
        MessageStatus.SENDING,
        MessageStatus.QUEUED,
    ]
    assert rows[1].claim_token and rows[1].handed_over_at is None
    assert _delivered(relay) == ["p0@x.test"]
    # Before the lease is over nothing touches it; after, it is queued again, not flagged.
    assert pipeline.reconcile_stuck() == (0, 0)
    later = timezone.now() + pipeline.lease() + timedelta(seconds=1)
    assert pipeline.reconcile_stuck(later) == (1, 0)
    assert pipeline.send_run(messages[1].pk) == "sent"
    assert _delivered(relay) == ["p0@x.test", "p1@x.test", "p2@x.test"]
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 3
    assert not Message.objects.filter(uncertain=True).exists()

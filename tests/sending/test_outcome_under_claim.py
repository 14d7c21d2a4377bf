"""A send's outcome is written only while its claim holds: the statement that marks it sent
also bumps its roll-ups and writes its feed entry, and does none of it for a claim that was
lost (the lease ran out and another worker took the message), in autocommit as a worker runs."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db.models import Sum

from accounts.models import Tenant, User
from analytics.models import DomainRollup, FeedKind, Notification, Rollup
from channels.models import Identity
from sending import pipeline
from sending.models import Message, MessageStatus
from tests.mailservers import SmtpServer
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db(transaction=True)


def _claimed(tenant: Tenant, user: User, identity: Identity) -> pipeline._Attempt:
    with mock.patch("msc_admin.enqueue.after_commit"):
        queued = queue_message(tenant, user, identity, to="ada@prospect.test")
    claimed = pipeline.claim(queued.pk)
    assert claimed is not None
    message, token = claimed
    # What the claim read with it, as select_related would have.
    assert message.channel is not None and message.channel.pk == queued.channel_id
    assert message.status == MessageStatus.SENDING and message.claim_token == token
    return pipeline._Attempt(message, token)


def _counted(tenant: Tenant) -> tuple[int, int, int]:
    sent = Rollup.objects.filter(tenant=tenant).aggregate(n=Sum("sent"))["n"] or 0
    domains = DomainRollup.objects.filter(tenant=tenant).aggregate(n=Sum("sent"))["n"] or 0
    feed = Notification.objects.filter(tenant=tenant, kind=FeedKind.SENT).count()
    return sent, domains, feed


def test_sent_under_the_claim_counts_once_with_its_feed_entry(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    attempt = _claimed(acme, rep_user, rep_identity)
    attempt.handed_over()
    assert attempt.sent("250 2.0.0 Ok: queued") == "sent"
    row = Message.objects.get(pk=attempt.message.pk)
    assert row.status == MessageStatus.SENT and row.smtp_code == "250"
    assert row.handed_over_at is not None and row.sent_at is not None
    assert _counted(acme) == (1, 1, 1)
    entry = Notification.objects.get(tenant=acme, kind=FeedKind.SENT)
    assert entry.created_at == row.sent_at and "ada@prospect.test" in entry.text
    domain = DomainRollup.objects.get(tenant=acme)
    assert domain.domain == "prospect.test" and domain.channel_key == row.channel_id


def test_a_lost_claim_writes_no_outcome_no_figure_and_no_feed_entry(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    attempt = _claimed(acme, rep_user, rep_identity)
    # The lease ran out; reconcile requeued it and another worker claimed it.
    Message.objects.filter(pk=attempt.message.pk).update(claim_token="another-worker")
    attempt.handed_over()
    attempt.sent("250 2.0.0 Ok: queued")
    row = Message.objects.get(pk=attempt.message.pk)
    assert row.status == MessageStatus.SENDING and row.claim_token == "another-worker"
    assert row.sent_at is None and row.handed_over_at is None
    assert _counted(acme) == (0, 0, 0)

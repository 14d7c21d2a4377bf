"""The statements every send and every bounce batch repeats are prepared once per connection
(``msc_admin.bulk.statement_cursor``): the server plans the claim once, not at each send, and
everything those statements write is what it was."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import connection
from django.db.models.signals import post_save

from accounts.models import Tenant, User
from bounces import services as bounces
from bounces.models import BounceEvent
from channels.kinds.base import rolling
from channels.models import Identity
from sending import pipeline, quota
from sending.models import Message, MessageStatus, QuotaSlot, QuotaWindow, Suppression
from tests.bounces.conftest import dsn_for, mark_sent
from tests.mailservers import SmtpServer
from tests.sending.conftest import gmail_channel, queue_message

pytestmark = pytest.mark.django_db(transaction=True)


def _prepared() -> list[str]:
    """The statements this connection has prepared on the server."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements ORDER BY prepare_time")
        return [row[0] for row in cursor.fetchall()]


def _queue(tenant: Tenant, user: User, identity: Identity, first: int, n: int) -> list[Message]:
    with mock.patch("msc_admin.enqueue.after_commit"):  # the test runs the worker's side
        return [
            queue_message(tenant, user, identity, to=f"p{i}@prospect.test")
            for i in range(first, first + n)
        ]


def _like(statements: list[str], *parts: str) -> list[str]:
    return [sql for sql in statements if all(part in sql for part in parts)]


def test_a_runs_statements_are_prepared_once_and_its_messages_all_sent(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    messages = _queue(acme, rep_user, rep_identity, 0, 3)
    assert pipeline.send_run(messages[0].pk) == "sent"
    prepared = _prepared()
    # The first claim, by id; the hand-over; the outcome with its roll-ups and feed entry, which
    # claims the channel's next message in the same statement. Both claims read what stops a
    # send (suppression, blocked domain, the team's limits): no statement of its own.
    assert len(_like(prepared, "WITH claimed AS", "next_attempt_at <=")) == 1
    assert len(_like(prepared, "SET handed_over_at")) == 1
    assert len(_like(prepared, "WITH done AS", "analytics_notification")) == 1
    assert len(_like(prepared, "WITH done AS", "claimed AS", "FOR UPDATE SKIP LOCKED")) == 1
    assert len(_like(prepared, "claimed AS", "paused_providers", "sending_suppression")) == 2
    assert _like(prepared, "FROM (SELECT 1) AS one\nLEFT JOIN delivery_channels_team") == []
    # Composing: the suppression look-up and the message's INSERT.
    assert len(_like(prepared, "FROM sending_suppression s WHERE")) == 1
    assert len(_like(prepared, "INSERT INTO sending_message", "RETURNING")) == 1

    # A second run on the same connection reuses them: nothing more is prepared.
    later = _queue(acme, rep_user, rep_identity, 3, 4)
    assert pipeline.send_run(later[0].pk) == "sent"
    assert sorted(_prepared()) == sorted(prepared)

    rows = Message.objects.filter(pk__in=[m.pk for m in messages + later])
    assert {m.status for m in rows} == {MessageStatus.SENT}
    assert all(m.attempts == 1 and m.handed_over_at and m.sent_at for m in rows)
    assert len(relay.received.messages) == 7


def test_a_composed_message_is_stored_as_it_is_returned(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    (message,) = _queue(acme, rep_user, rep_identity, 0, 1)
    stored = Message.objects.get(pk=message.pk)
    for field in Message._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(message, field.attname), field.name
    assert stored.created_at is not None and stored.updated_at is not None
    assert stored.status == MessageStatus.QUEUED and stored.to_domain == "prospect.test"
    assert not message._state.adding and message._state.db == "default"


def test_a_models_save_signals_are_still_sent_when_it_has_receivers(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    heard: list[tuple[int, bool]] = []

    def receiver(sender: type, instance: Message, created: bool, **kwargs: object) -> None:
        heard.append((instance.pk, created))

    post_save.connect(receiver, sender=Message, dispatch_uid="test-prepared")
    try:
        (message,) = _queue(acme, rep_user, rep_identity, 0, 1)
    finally:
        post_save.disconnect(dispatch_uid="test-prepared", sender=Message)
    assert heard == [(message.pk, True)]
    assert Message.objects.filter(pk=message.pk, status=MessageStatus.QUEUED).exists()


def test_reserving_in_rolling_limits_reuses_its_prepared_statements(
    acme: Tenant, rep_user: User
) -> None:
    channel = gmail_channel(acme, rep_user)
    rules = [rolling("minute", 100, 60, "100 a minute"), rolling("day", 100, 86_400, "100 a day")]
    assert isinstance(quota.reserve(channel, rules), quota.Reservation)
    prepared = _prepared()
    assert len(_like(prepared, "INSERT INTO sending_quotaslot")) == 1
    assert len(_like(prepared, "DELETE FROM sending_quotaslot")) == 1
    for _ in range(3):
        assert isinstance(quota.reserve(channel, rules), quota.Reservation)
    assert sorted(_prepared()) == sorted(prepared)
    # Four sends counted in each window.
    assert QuotaSlot.objects.filter(channel=channel, rule="minute").count() == 4
    assert QuotaWindow.objects.get(channel=channel, rule="day").used == 4


def test_bounce_batches_reuse_their_prepared_statements(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    sent = [
        mark_sent(queue_message(acme, rep_user, rep_identity, to=f"b{i}@prospect.test"))
        for i in range(4)
    ]

    def batch(messages: list[Message]) -> None:
        items = [
            bounces.Incoming(dsn_for(m, own_id=f"<dsn-{m.pk}@mx.prospect.test>")) for m in messages
        ]
        bounces.ingest_many(tenant=acme, items=items)

    batch(sent[:2])
    prepared = _prepared()
    assert len(_like(prepared, "INSERT INTO bounces_bounceevent", "unnest")) == 1
    assert len(_like(prepared, "UPDATE sending_message AS m", "unnest")) == 1
    assert len(_like(prepared, "INSERT INTO sending_suppression", "unnest")) == 1
    batch(sent[2:])
    assert sorted(_prepared()) == sorted(prepared)
    # Each bounce counted once, each message bounced, each address suppressed.
    assert BounceEvent.objects.filter(tenant=acme).count() == 4
    statuses = set(Message.objects.filter(pk__in=[m.pk for m in sent]).values_list("status"))
    assert statuses == {(MessageStatus.BOUNCED,)}
    assert Suppression.objects.filter(tenant=acme).count() == 4

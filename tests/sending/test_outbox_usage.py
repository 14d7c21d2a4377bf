"""The Outbox's "sent by you in the last 24 hours" (the window the limits count): every message
handed over in it, bounced later or not."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from bounces import services as bounces
from channels.kinds import ChannelKind
from channels.models import Channel, Identity
from sending import pipeline
from sending.models import Hold, Message, MessageStatus
from tests.bounces.conftest import dsn_for
from tests.mailservers import SmtpServer
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db


def test_the_last_24_hours_count_mail_that_bounced_after_it_went(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    went = []
    for n in range(3):
        message = queue_message(acme, rep_user, rep_identity, to=f"p{n}@prospect.test")
        assert pipeline.send_message(message.pk) == "sent"
        went.append(message)
    bounces.ingest_many(tenant=acme, items=[bounces.Incoming(dsn_for(went[0]), timezone.now())])
    # Yesterday by the calendar, but inside the last 24 hours: counted.
    late = queue_message(acme, rep_user, rep_identity, to="late@prospect.test")
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    Message.objects.filter(pk=late.pk).update(
        status=MessageStatus.SENT, sent_at=midnight - timedelta(seconds=1)
    )
    # Not counted: one handed over 24 hours ago, one that never went (failed before hand-over).
    old = queue_message(acme, rep_user, rep_identity, to="old@prospect.test")
    Message.objects.filter(pk=old.pk).update(
        status=MessageStatus.SENT, sent_at=timezone.now() - timedelta(days=1, minutes=1)
    )
    never = queue_message(acme, rep_user, rep_identity, to="never@prospect.test")
    Message.objects.filter(pk=never.pk).update(status=MessageStatus.FAILED)

    statuses = sorted(
        Message.objects.filter(pk__in=[m.pk for m in went]).values_list("status", flat=True)
    )
    assert statuses == [MessageStatus.BOUNCED, MessageStatus.SENT, MessageStatus.SENT]
    body = rep_client.get(reverse("sending:outbox")).content.decode()
    assert "4 sent by you in the last 24 hours" in body


def test_mail_held_by_a_rolling_24_hour_limit_is_not_said_to_wait_for_a_daily_one(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    held = queue_message(acme, rep_user, rep_identity, to="held@prospect.test")
    Message.objects.filter(pk=held.pk).update(
        hold=Hold.CAP,
        status_detail="Team limit: 200 in 24 hours; next send at 12:00:05 UTC.",
        next_attempt_at=timezone.now() + timedelta(hours=3),
    )
    body = rep_client.get(reverse("sending:outbox_folder", args=["queued"])).content.decode()
    row = body.split("held@prospect.test")[1].split("</tr>")[0]
    assert '<span class="badge warn">24-hour limit</span>' in body
    assert "Daily limit" not in body and "Team limit: 200 in 24 hours" in row


def test_mail_held_by_an_exchange_servers_calendar_day_says_daily_limit(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    held = queue_message(acme, rep_user, rep_identity, to="held@prospect.test")
    Channel.objects.filter(pk=held.channel_id).update(kind=ChannelKind.EXCHANGE_ONPREM)
    Message.objects.filter(pk=held.pk).update(hold=Hold.CAP, status_detail="Daily limit set")
    body = rep_client.get(reverse("sending:outbox_folder", args=["queued"])).content.decode()
    assert '<span class="badge warn">Daily limit</span>' in body and "24-hour" not in body


def test_a_sent_message_says_so_in_words_with_the_servers_reply_as_a_tooltip(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    message = queue_message(acme, rep_user, rep_identity)
    assert pipeline.send_message(message.pk) == "sent"
    message.refresh_from_db()
    assert message.status_detail == "250 2.0.0 Ok: queued"  # kept as the server said it
    body = rep_client.get(reverse("sending:outbox_folder", args=["sent"])).content.decode()
    assert (
        '<span class="detail" title="The server answered: 250 2.0.0 Ok: queued">'
        "Accepted by the sending server.</span>"
    ) in body
    assert ">250 2.0.0" not in body  # never as the row's text


def test_the_outbox_reads_the_membership_and_the_team_settings_once(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    """The middleware's membership row is the user's (``user.membership``), and the usage
    panel takes the team settings the page read already: neither is read twice."""
    queue_message(acme, rep_user, rep_identity, to="p@prospect.test")
    rep_client.get(reverse("sending:outbox"))  # the session's first request writes to it
    with CaptureQueriesContext(connection) as queries:
        response = rep_client.get(reverse("sending:outbox"))
    assert response.status_code == 200
    sql = [q["sql"] for q in queries.captured_queries]
    assert sum('FROM "accounts_membership"' in s for s in sql) == 1, sql
    assert sum('FROM "delivery_channels_teamsendingsettings"' in s for s in sql) == 1, sql

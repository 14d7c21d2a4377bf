"""The Outbox's "sent today by you": every message handed over today, bounced later or not."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from bounces import services as bounces
from channels.models import Identity
from sending import pipeline
from sending.models import Message, MessageStatus
from tests.bounces.conftest import dsn_for
from tests.mailservers import SmtpServer
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db


def test_sent_today_counts_mail_that_bounced_after_it_went(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    went = []
    for n in range(3):
        message = queue_message(acme, rep_user, rep_identity, to=f"p{n}@prospect.test")
        assert pipeline.send_message(message.pk) == "sent"
        went.append(message)
    bounces.ingest_many(tenant=acme, items=[bounces.Incoming(dsn_for(went[0]), timezone.now())])
    # Not today's: one handed over yesterday, one that never went (failed before hand-over).
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
    assert "3 sent today by you" in body

"""Limits by receiving domain with a real Celery worker, Redis and the loopback relay: a cap
holds the mail over it until its window frees, and a provider's bounce spike holds the mail to
that provider only until an admin resumes it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core import mail
from django.db.models import F
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from analytics import rollups
from analytics.models import FeedKind, Notification
from bounces import services as bounce_services
from bounces.models import BounceSpike
from channels import providers
from channels import services as channel_services
from channels.models import Identity
from msc_admin.celery import app as celery_app
from msc_admin.stored import read
from sending import pipeline
from sending.models import DomainCapSlot, Hold, Message, MessageStatus
from tests.bounces.conftest import dsn_for, mark_sent
from tests.mailservers import SmtpServer
from tests.sending.conftest import queue_message
from tests.waiting import wait_for
from tests.workers import celery_worker, wait_until_idle

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _empty_broker() -> None:
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()


def _status(message: Message) -> tuple[str, str]:
    message.refresh_from_db()
    return message.status, message.hold


def _received(relay: SmtpServer) -> list[str]:
    return sorted(m["to"][0] for m in relay.received.messages)


def test_a_cap_holds_the_mail_over_it_until_its_window_frees(
    acme: Tenant, admin_user: User, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    cap = channel_services.domain_cap_add(
        tenant=acme, actor=admin_user, limit=2, period="hour", provider="google", domains=[]
    )
    with celery_worker("caps"):
        gmail = [
            queue_message(acme, rep_user, rep_identity, to=f"g{n}@gmail.com") for n in range(3)
        ]
        other = queue_message(acme, rep_user, rep_identity, to="pat@prospect.test")
        wait_for(
            lambda: (
                Message.objects.filter(status=MessageStatus.SENT).count() == 3
                and Message.objects.filter(hold=Hold.DOMAIN_CAP).count() == 1
            ),
            60,
            "two to Gmail and the other one sent, one to Gmail held",
        )
        wait_until_idle("caps")
        assert _status(other) == (MessageStatus.SENT, Hold.NONE)
        (held,) = Message.objects.filter(hold=Hold.DOMAIN_CAP)
        assert held.status == MessageStatus.QUEUED and held.attempts == 0
        first = min(DomainCapSlot.objects.filter(cap=cap).values_list("at", flat=True))
        assert held.next_attempt_at == datetime.fromtimestamp(first + 3600, UTC)
        assert held.detail_text.startswith("At most 2 an hour to Google mailboxes; next send at")
        assert len(relay.received.messages) == 3
        # Nothing due before the hour: a tick hands nothing over.
        assert pipeline.dispatch_due() == 0

        # The hour passes (the window's sends turn an hour old; the message comes due).
        DomainCapSlot.objects.filter(cap=cap).update(at=F("at") - 3600)
        Message.objects.filter(pk=held.pk).update(next_attempt_at=timezone.now())
        wait_for(
            lambda: _status(held) == (MessageStatus.SENT, Hold.NONE),
            60,
            "the held message to be sent",
            tick=pipeline.dispatch_due,
        )
        wait_until_idle("caps")
    assert _received(relay) == [*sorted(m.to_email for m in gmail), "pat@prospect.test"]


def test_a_provider_spike_holds_mail_to_that_provider_only_until_an_admin_resumes_it(
    acme: Tenant,
    admin_user: User,
    admin_client: Client,
    rep_user: User,
    rep_identity: Identity,
    relay: SmtpServer,
) -> None:
    # Sent earlier (and counted in the roll-ups, as sends are): 20 to Gmail, 30 elsewhere.
    earlier = [f"p{n}@gmail.com" for n in range(20)] + [f"p{n}@prospect.test" for n in range(30)]
    sent = [mark_sent(queue_message(acme, rep_user, rep_identity, to=to)) for to in earlier]
    for message in sent:
        assert message.sent_at is not None
        rollups.count_sent(message, message.sent_at)
    to_gmail = sent[:20]
    with celery_worker("spikes"):
        wait_until_idle("spikes")  # the tasks of the mail marked sent found nothing to do
        before = len(relay.received.messages)
        items = [bounce_services.Incoming(dsn_for(m, own_id=f"<s{m.pk}@mx>")) for m in to_gmail[:4]]
        bounce_services.ingest_many(tenant=acme, items=items)  # 4 of 20: 20 %
        spike = BounceSpike.objects.get(provider=providers.GOOGLE)
        told = Notification.objects.filter(kind=FeedKind.CHANNEL, user=admin_user)
        assert read(told.get().text).startswith("Sending to Google mailboxes paused: 4 of 20")
        assert [email.to for email in mail.outbox] == [[admin_user.email]]

        later_gmail = queue_message(acme, rep_user, rep_identity, to="later@gmail.com")
        later_other = queue_message(acme, rep_user, rep_identity, to="later@prospect.test")
        wait_for(
            lambda: (
                _status(later_other) == (MessageStatus.SENT, Hold.NONE)
                and _status(later_gmail) == (MessageStatus.QUEUED, Hold.PROVIDER)
            ),
            60,
            "mail elsewhere sent, mail to Gmail held",
        )
        wait_until_idle("spikes")
        assert [m["to"] for m in relay.received.messages[before:]] == [["later@prospect.test"]]
        assert later_gmail.attempts == 0 and later_gmail.next_attempt_at is None
        assert pipeline.dispatch_due() == 0  # held until resumed, not retried

        response = admin_client.post(reverse("bounces:spike_resolve", args=[spike.pk]))
        assert response.status_code == 302
        wait_for(
            lambda: _status(later_gmail) == (MessageStatus.SENT, Hold.NONE),
            60,
            "the held message to be sent after the resume",
            tick=pipeline.dispatch_due,
        )
        wait_until_idle("spikes")
    assert [m["to"] for m in relay.received.messages[before:]] == [
        ["later@prospect.test"],
        ["later@gmail.com"],
    ]

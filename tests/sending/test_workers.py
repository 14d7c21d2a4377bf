"""At-most-once sending and shared quotas with real Celery workers, Redis and a loopback relay."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from email import message_from_bytes

import pytest
import redis
from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant, User
from channels import services as channel_services
from channels.models import Channel, Identity, TeamSendingSettings
from msc_admin.celery import app as celery_app
from msc_admin.devtls import Certificates
from sending import pipeline
from sending.models import Message, MessageStatus
from sending.tasks import send_message
from tests.mailservers import smtp_server
from tests.sending.conftest import gmail_channel, queue_message, relay_config
from tests.waiting import wait_for
from tests.workers import celery_worker, finished, wait_until_idle

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _empty_broker() -> None:
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()


def test_two_workers_share_one_quota_exactly(
    acme: Tenant, rep_user: User, certs: Certificates
) -> None:
    """N per window across two worker processes: never more than N in a window, none lost, none
    twice."""
    per_window, window, total = 4, 6, 10
    with smtp_server(mode="starttls", cert=certs.trusted, tokens={"good-token"}) as gmail:
        channel = gmail_channel(acme, rep_user)
        TeamSendingSettings.objects.filter(tenant=acme).update(
            throttling_enabled=True, batch_size=per_window, wait_seconds=window
        )
        identity = channel_services.identity_ensure_default(user=rep_user, tenant=acme)
        identity.channel = channel
        identity.save()
        env = {"MSC_GMAIL_SMTP": f"localhost:{gmail.port}"}
        with celery_worker("quota-a", env=env), celery_worker("quota-b", env=env):
            for n in range(total):
                queue_message(acme, rep_user, identity, to=f"lead{n}@prospect.test")
            wait_for(
                lambda: Message.objects.filter(status=MessageStatus.SENT).count() == total,
                timeout=90,
                what="every message to be sent",
                tick=pipeline.dispatch_due,  # what beat does every few seconds
            )
            # Every task handed over (wake-ups at the window's end, the ticks' hand-overs) has
            # run: a second delivery would have arrived by now.
            wait_until_idle("quota-a", "quota-b")
    ids = [message_from_bytes(m["data"])["Message-ID"] for m in gmail.received.messages]
    assert len(ids) == total and len(set(ids)) == total
    # Each send takes its slot after its claim and before its hand-over, and a batch window opens
    # with the send that takes its first slot. So with at most N per window the (kN+1)-th
    # hand-over comes at least k windows after the earliest claim, however long the machine
    # took between reserving and handing over (arrival times at the server would blur that).
    sent = Message.objects.filter(status=MessageStatus.SENT)
    start = min(sent.values_list("claimed_at", flat=True))
    handovers = sorted(sent.values_list("handed_over_at", flat=True))
    assert len(handovers) == total
    for k in (1, 2):
        after = (handovers[k * per_window] - start).total_seconds()
        assert after >= k * window, [round((h - start).total_seconds(), 2) for h in handovers]


def test_a_worker_killed_mid_send_never_causes_a_second_delivery(
    acme: Tenant, rep_user: User, rep_identity: Identity, certs: Certificates, team_channel: Channel
) -> None:
    with smtp_server(
        mode="starttls",
        cert=certs.trusted,
        users={"relay-user": "relay-password"},
        data_delay=30,  # the server has the message and has not answered yet
    ) as slow:
        channel_services.channel_save_smtp(
            tenant=acme,
            actor=rep_user,
            owner=None,
            config=relay_config(slow),
            password="relay-password",
            use_for_all_members=True,
        )
        with celery_worker("doomed") as proc:
            message = queue_message(acme, rep_user, rep_identity)
            wait_for(lambda: len(slow.received.messages) == 1)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        message.refresh_from_db()
        assert message.status == MessageStatus.SENDING and message.handed_over_at is not None

        # Later, the reconciler finds the abandoned claim: flagged, not resent.
        later = timezone.now() + pipeline.lease() + timedelta(seconds=1)
        assert pipeline.reconcile_stuck(now=later) == (0, 1)
        with celery_worker("survivor"):
            assert pipeline.dispatch_due() == 0  # a flagged message is not handed over again
            send_message.delay(message.pk)  # and even a redelivered task does nothing:
            wait_for(
                lambda: (finished("survivor") or 0) >= 1,
                60,  # the slow server holds its answer 30 s
                "the survivor to run the redelivered task to the end",
            )
        assert len(slow.received.messages) == 1
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and message.uncertain
    assert message.status_detail.startswith("Delivery uncertain")


def test_the_same_message_enqueued_twice_concurrently_is_one_smtp_transaction(
    acme: Tenant, rep_user: User, rep_identity: Identity, certs: Certificates, team_channel: Channel
) -> None:
    with smtp_server(
        mode="starttls", cert=certs.trusted, users={"relay-user": "relay-password"}, data_delay=1
    ) as relay:
        channel_services.channel_save_smtp(
            tenant=acme,
            actor=rep_user,
            owner=None,
            config=relay_config(relay),
            password="relay-password",
            use_for_all_members=True,
        )
        with celery_worker("twin-a"), celery_worker("twin-b"):
            message = queue_message(acme, rep_user, rep_identity)  # enqueued on commit
            send_message.delay(message.pk)
            send_message.delay(message.pk)
            wait_for(lambda: Message.objects.get(pk=message.pk).status == MessageStatus.SENT)
            wait_until_idle("twin-a", "twin-b")
            # All three tasks (the one enqueued on commit and both repeats) ran to the end.
            assert finished("twin-a", "twin-b") == 3
        assert len(relay.received.messages) == 1
        assert len(relay.received.auth_attempts) == 1  # the losers never even connected


def test_a_task_enqueued_in_a_rolled_back_transaction_never_runs(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    broker = redis.Redis.from_url(os.environ["REDIS_URL"])
    celery_app.control.purge()  # what the fixtures enqueued (the team channel's domain check)

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        queue_message(acme, rep_user, rep_identity)
        raise Rollback
    assert Message.objects.count() == 0
    assert broker.llen("celery") == 0
    queue_message(acme, rep_user, rep_identity)
    assert broker.llen("celery") == 1

"""Inbox scans on real Celery workers: many scan requests at once still count each bounce once."""

from __future__ import annotations

import pytest

from accounts.models import Tenant, User
from bounces.models import BounceEvent, InboxCursor
from bounces.tasks import scan_inbox
from channels import services as channel_services
from msc_admin.celery import app as celery_app
from sending.models import Message, MessageStatus
from tests.bounces.conftest import dsn_for, mark_sent
from tests.mailservers import ImapServer
from tests.sending.conftest import gmail_channel, queue_message
from tests.sending.test_workers import wait_for
from tests.workers import celery_worker

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def test_two_workers_scanning_one_inbox_count_each_bounce_once(
    acme: Tenant, rep_user: User, dovecot: ImapServer, settings
) -> None:
    celery_app.control.purge()
    dovecot.add_user("rep@acme.test", "tok")
    channel = gmail_channel(acme, rep_user, token="tok")
    identity = channel_services.identity_ensure_default(user=rep_user, tenant=acme)
    sent = [
        mark_sent(queue_message(acme, rep_user, identity, to=f"lead{n}@prospect.test"))
        for n in range(20)
    ]
    dovecot.deliver("rep@acme.test", "tok", *[dsn_for(m, own_id=f"<b{m.pk}@m>") for m in sent])
    env = {"MSC_GMAIL_IMAP": settings.MSC_GMAIL_IMAP}
    with celery_worker("scan-a", env=env), celery_worker("scan-b", env=env):
        for _ in range(4):
            scan_inbox.delay(channel.pk)
        wait_for(lambda: BounceEvent.objects.count() >= 20, timeout=60)
        wait_for(lambda: InboxCursor.objects.filter(channel=channel, last_uid=20).exists())
    assert BounceEvent.objects.count() == 20
    assert Message.objects.filter(status=MessageStatus.BOUNCED).count() == 20

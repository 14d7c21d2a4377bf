"""Inbox scans on real Celery workers: many scan requests at once still count each bounce once,
by IMAP and through the Gmail API."""

from __future__ import annotations

import pytest

from accounts.models import Tenant, User
from bounces.models import BounceEvent, InboxCursor
from bounces.tasks import scan_inbox
from channels import services as channel_services
from msc_admin.celery import app as celery_app
from msc_admin.devtls import Certificates
from sending.models import Message, MessageStatus
from tests.bounces.conftest import dsn_for, mark_sent
from tests.bounces.mailapi import FakeGmail
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


def test_workers_read_gmail_through_the_api_spam_included_each_bounce_once(
    acme: Tenant, rep_user: User, certs: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IMAP switched off: the Gmail API (the fake, served over HTTPS on loopback) is all the
    workers have, and half the bounces were filed to Spam."""
    celery_app.control.purge()
    channel = gmail_channel(acme, rep_user, token="tok", reading="api")
    identity = channel_services.identity_ensure_default(user=rep_user, tenant=acme)
    sent = [
        mark_sent(queue_message(acme, rep_user, identity, to=f"lead{n}@prospect.test"))
        for n in range(12)
    ]
    gmail = FakeGmail("tok")
    for n, message in enumerate(sent):
        gmail.deliver(
            dsn_for(message, own_id=f"<b{message.pk}@m>"), label="SPAM" if n % 2 else "INBOX"
        )
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca_file))  # requests trusts the test CA
    with gmail.serve(certs.trusted) as base:
        env = {"MSC_GMAIL_API_URL": base, "MSC_GMAIL_IMAP": "localhost:9"}  # no IMAP
        with celery_worker("read-a", env=env), celery_worker("read-b", env=env):
            for _ in range(3):
                scan_inbox.delay(channel.pk)
            wait_for(lambda: BounceEvent.objects.count() >= 12, timeout=60)
            wait_for(
                lambda: InboxCursor.objects.filter(channel=channel).exclude(token="").count() == 2
            )
    assert BounceEvent.objects.count() == 12
    assert Message.objects.filter(status=MessageStatus.BOUNCED).count() == 12
    assert set(InboxCursor.objects.filter(channel=channel).values_list("folder", flat=True)) == {
        "INBOX",
        "SPAM",
    }
    assert gmail.requests and gmail.writes == []  # read-only

"""Exchange on-premises end to end on a real Celery worker: a message sent through EWS (the
stand-in EWS server on loopback, ``tests.ewsserver``), its bounce filed in Junk Email, read by
the scan task and counted in the ledger."""

from __future__ import annotations

from email import message_from_bytes
from pathlib import Path

import pytest
from django.db.models import Sum

from accounts.models import Tenant, User
from analytics.models import Rollup
from bounces.models import BounceEvent, InboxCursor
from bounces.tasks import scan_inbox
from msc_admin.celery import app as celery_app
from msc_admin.devtls import Certificates
from msc_admin.stored import read
from sending.models import Message, MessageStatus
from tests.bounces.conftest import dsn_for
from tests.ewsserver import ews_server
from tests.sending.conftest import queue_message
from tests.sending.test_exchange_onprem_send import USER, onprem_channel
from tests.waiting import wait_for
from tests.workers import celery_worker

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def test_an_on_premises_channel_sends_through_ews_and_its_bounce_reaches_the_ledger(
    acme: Tenant, rep_user: User, certs: Certificates, tmp_path: Path
) -> None:
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    with (
        ews_server(certs.trusted, username=USER, password="pw", tmp=tmp_path) as exchange,
        celery_worker("ews-worker"),
    ):
        channel, identity = onprem_channel(acme, rep_user, exchange)
        message = queue_message(acme, rep_user, identity)  # enqueued once committed
        wait_for(
            lambda: Message.objects.filter(pk=message.pk, status=MessageStatus.SENT).exists(),
            timeout=60,
        )
        (sent,) = exchange.sent
        assert message_from_bytes(sent)["Message-ID"] == message.message_id
        assert [item.mime for item in exchange.folders["sentitems"]] == [sent]
        exchange.deliver("junkemail", dsn_for(message, own_id="<bounce-1@mx.prospect.test>"))
        scan_inbox.delay(channel.pk)
        wait_for(lambda: BounceEvent.objects.filter(message=message).exists(), timeout=60)
        wait_for(lambda: InboxCursor.objects.filter(channel=channel, ok=True).exists())
    event = BounceEvent.objects.get(message=message)
    assert (event.recipient, event.channel_id) == ("pat@prospect.test", channel.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.BOUNCED
    totals = Rollup.objects.filter(tenant=acme).aggregate(
        sent=Sum("sent"), bounced=Sum("hard") + Sum("soft")
    )
    assert totals == {"sent": 1, "bounced": 1}
    cursor = InboxCursor.objects.get(channel=channel)
    assert "1 new message read, 1 bounce recorded" in read(cursor.message)

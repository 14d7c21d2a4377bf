"""Scan now on an Exchange Online inbox when this server has no Microsoft app configured.

The IMAP token must be refreshed and cannot be: the scan ends with words that say who can fix
it, on the card and in the task's result, and the channel (which may still send with its Graph
token) is left alone. It used to be an ``IndexError``: a 500 on the page, and with a worker a
crashed task and a card that polled forever.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from bounces.models import BounceEvent, InboxCursor
from bounces.tasks import scan_inbox
from channels.kinds import ChannelKind
from channels.models import Channel, ChannelStatus
from msc_admin.celery import app as celery_app
from tests.mailservers import free_port
from tests.sending.conftest import gmail_channel
from tests.sending.test_workers import wait_for
from tests.workers import ROOT, celery_worker

NOT_CONFIGURED = "Microsoft sign-in is not configured on this server"


@pytest.fixture
def exchange_online(acme: Tenant, admin_user: User, settings) -> Channel:
    """Connected while an app was configured: a Graph token for sending, no IMAP token yet."""
    assert settings.SOCIALACCOUNT_PROVIDERS["microsoft"]["APPS"] == []
    settings.MSC_OUTLOOK_IMAP = f"127.0.0.1:{free_port()}"  # never reached
    channel = gmail_channel(acme, admin_user, token="graph-token")
    Channel.objects.filter(pk=channel.pk).update(
        kind=ChannelKind.EXCHANGE_ONLINE,
        config={"provider": "microsoft", "uid": "m-1", "reading": "imap"},
    )
    return channel


def _card_says_not_configured(html: str, channel: Channel) -> None:
    start = html.index(f'<div id="scan-{channel.pk}"')
    card = html[start : html.index("</div>", start)]
    assert "scan failed" in card and NOT_CONFIGURED in card, card
    assert "MICROSOFT_CLIENT_ID" in card
    assert "hx-trigger" not in card  # the card does not poll


@pytest.mark.django_db(transaction=True)
def test_scan_now_says_microsoft_sign_in_is_not_configured(
    exchange_online: Channel, admin_client: Client
) -> None:
    url = reverse("bounces:scan", args=[exchange_online.pk])
    answer = admin_client.post(url, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    _card_says_not_configured(answer.content.decode(), exchange_online)

    plain = admin_client.post(url)
    assert plain.status_code == 302 and plain["Location"] == reverse("channels:overview")
    overview = admin_client.get(plain["Location"]).content.decode()
    _card_says_not_configured(overview, exchange_online)

    cursor = InboxCursor.objects.get(channel=exchange_online)
    assert cursor.ok is False and cursor.message.startswith(NOT_CONFIGURED)
    exchange_online.refresh_from_db()
    assert exchange_online.status == ChannelStatus.ACTIVE  # sending is not its business
    assert "imap_access_token" not in exchange_online.read_secret()
    assert not BounceEvent.objects.exists()


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_on_a_worker_the_task_ends_and_the_card_stops_polling(
    exchange_online: Channel, admin_client: Client, settings
) -> None:
    celery_app.control.purge()
    with celery_worker("scan-unconfigured", env={"MSC_OUTLOOK_IMAP": settings.MSC_OUTLOOK_IMAP}):
        answer = admin_client.post(
            reverse("bounces:scan", args=[exchange_online.pk]), HTTP_HX_REQUEST="true"
        )
        card = answer.content.decode()
        assert "Reading the inbox for bounces" in card  # a worker has it: the card polls
        poll = re.search(r'hx-get="([^"]+)"', card)
        assert poll is not None
        status_url = poll.group(1).replace("&amp;", "&")

        def card_settled() -> bool:
            nonlocal card
            card = admin_client.get(status_url, HTTP_HX_REQUEST="true").content.decode()
            return "hx-trigger" not in card

        wait_for(card_settled, timeout=60)
        _card_says_not_configured(card, exchange_online)
    log = (ROOT / "test-artifacts" / "scan-unconfigured.log").read_text()
    assert f"{scan_inbox.name}[" in log and "succeeded" in log and NOT_CONFIGURED in log, log
    assert "Traceback" not in log and "raised unexpected" not in log, log
    cursor = InboxCursor.objects.get(channel=exchange_online)
    assert cursor.ok is False and cursor.message.startswith(NOT_CONFIGURED)

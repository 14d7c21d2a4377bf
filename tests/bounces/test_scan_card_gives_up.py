"""A scan asked for with Scan now that no worker ever runs (no worker, a task lost with a broker
restart): the card polls while a scan could still be running, then stops and says so, instead of
polling for ever."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from bounces.models import InboxCursor
from bounces.views import scan_wait_seconds
from tests.sending.conftest import gmail_channel


def _card(client: Client, pk: int, after: float) -> str:
    url = reverse("bounces:scan_status", args=[pk])
    answer = client.get(url, {"after": f"{after:f}"}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    return answer.content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_card_stops_polling_when_the_scan_never_ran(
    acme: Tenant, rep_user: User, rep_client: Client
) -> None:
    channel = gmail_channel(acme, rep_user)
    now = timezone.now().timestamp()

    just_asked = _card(rep_client, channel.pk, now - 5)
    assert "hx-trigger" in just_asked and "Reading the inbox" in just_asked

    long_ago = _card(rep_client, channel.pk, now - scan_wait_seconds() - 5)
    assert "hx-trigger" not in long_ago and "hx-get" not in long_ago
    assert "has not run yet" in long_ago and "try <strong>Scan now</strong> again" in long_ago
    assert not InboxCursor.objects.filter(channel=channel).exists()  # nothing was invented


@pytest.mark.django_db(transaction=True)
def test_a_scan_that_ran_shows_its_result_however_long_ago_it_was_asked(
    acme: Tenant, rep_user: User, rep_client: Client
) -> None:
    channel = gmail_channel(acme, rep_user)
    asked = timezone.now().timestamp() - scan_wait_seconds() - 5
    InboxCursor.objects.create(
        tenant=acme, channel=channel, scanned_at=timezone.now(), ok=True, message="3 messages read."
    )
    card = _card(rep_client, channel.pk, asked)
    assert "scanned" in card and "3 messages read." in card and "has not run yet" not in card

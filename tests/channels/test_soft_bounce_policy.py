"""The soft-bounce policy: how many soft bounces to one address end a person's campaign. One
would end it at the first soft bounce, the opposite of retrying: 2 is the least accepted."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant
from channels.models import ChannelAuditEvent, TeamSendingSettings

pytestmark = pytest.mark.django_db(transaction=True)

URL = reverse("channels:soft_bounces")


def test_a_limit_of_one_is_refused_beside_the_field_and_nothing_is_saved(
    fresh_admin_client: Client, acme: Tenant
) -> None:
    before = TeamSendingSettings.of_tenant(acme.pk).soft_bounce_limit
    response = fresh_admin_client.post(URL, {"soft_bounce_limit": "1", "soft_bounce_days": "9"})
    assert response.status_code == 400
    body = response.content.decode()
    field = body.split('name="soft_bounce_limit"')[0].rsplit("<div", 1)[1]
    assert "Enter 2 or more: with 1, the first soft bounce would end the campaign" in field
    assert 'value="1"' in body and 'value="9"' in body  # what was typed stays
    saved = TeamSendingSettings.of_tenant(acme.pk)
    assert (saved.soft_bounce_limit, saved.soft_bounce_days) == (before, 7)
    assert not ChannelAuditEvent.objects.filter(tenant=acme).exists()


def test_a_limit_of_two_is_saved(fresh_admin_client: Client, acme: Tenant) -> None:
    response = fresh_admin_client.post(URL, {"soft_bounce_limit": "2", "soft_bounce_days": "9"})
    assert response.status_code == 302
    saved = TeamSendingSettings.objects.get(tenant=acme)
    assert (saved.soft_bounce_limit, saved.soft_bounce_days) == (2, 9)

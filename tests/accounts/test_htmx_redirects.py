"""The middleware's redirects answer htmx requests the htmx way: 204 with ``HX-Redirect`` (htmx
loads the page itself) and no ``Location`` (which the browser's XHR would follow silently)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Role, Tenant, User
from tests.factories import MembershipFactory


@pytest.mark.django_db(transaction=True)
def test_an_admin_without_totp_is_sent_to_set_it_up(acme: Tenant) -> None:
    client = Client()
    client.force_login(MembershipFactory(tenant=acme, role=Role.ADMIN).user)
    response = client.get(reverse("channels:overview"), headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("mfa_activate_totp")
    assert "Location" not in response and response.content == b""


@pytest.mark.django_db(transaction=True)
def test_staff_without_a_recent_sign_in_are_sent_to_confirm_their_password(
    staff_user: User,
) -> None:
    client = Client()
    client.force_login(staff_user)  # signed in, but no recent password confirmation
    url = reverse("staff:servers")
    response = client.get(url, headers={"HX-Request": "true"})
    assert response.status_code == 204
    target = f"{reverse('account_reauthenticate')}?{urlencode({'next': url})}"
    assert response["HX-Redirect"] == target
    assert "Location" not in response and response.content == b""

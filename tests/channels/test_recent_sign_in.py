"""A fresh sign-in counts as recent authentication for credential forms, as it does for staff."""

from __future__ import annotations

import pytest
from allauth.account.internal.flows.login import AUTHENTICATION_METHODS_SESSION_KEY
from django.conf import settings
from django.test import Client
from django.urls import reverse

from accounts.models import Role, Tenant, User
from channels.models import Channel
from tests.conftest import add_totp, totp_code
from tests.factories import PASSWORD, MembershipFactory

SMTP_POST = {
    "host": "localhost",
    "port": "2525",
    "security": "starttls",
    "auth_method": "PLAIN",
    "username": "apikey",
    "password": "SG.fresh-sign-in-key",
    "sending_domain": "acme.test",
}


def _sign_in(email: str, totp_secret: str | None = None) -> Client:
    """Through the login form (and the TOTP step), as a person does: no force_login."""
    client = Client()
    response = client.post(reverse("account_login"), {"login": email, "password": PASSWORD})
    assert response.status_code == 302, response.content[:300]
    if totp_secret:
        assert response["Location"] == reverse("mfa_authenticate")
        code = totp_code(totp_secret)
        response = client.post(reverse("mfa_authenticate"), {"code": code})
        assert response.status_code == 302
    assert response["Location"] == reverse("home")
    return client


def _age_sign_in(client: Client, seconds: float) -> None:
    """Pretend the sign-in (and any confirmation) happened ``seconds`` earlier."""
    session = client.session
    records = session[AUTHENTICATION_METHODS_SESSION_KEY]
    for record in records:
        record["at"] -= seconds
    session[AUTHENTICATION_METHODS_SESSION_KEY] = records
    session.save()


@pytest.mark.django_db(transaction=True)
def test_a_rep_edits_smtp_right_after_signing_in_without_confirming_again(acme: Tenant) -> None:
    rep = MembershipFactory(tenant=acme, role=Role.REP, user__email="rep@acme.test").user
    client = _sign_in(rep.email)

    page = client.get(reverse("channels:smtp_edit"))
    assert page.status_code == 200
    assert b'name="password"' in page.content
    overview = client.get(reverse("channels:overview")).content.decode()
    assert "Confirm your password to connect" not in overview

    response = client.post(reverse("channels:smtp_edit"), SMTP_POST)
    assert response.status_code == 302
    assert response["Location"] == reverse("channels:overview")
    channel = Channel.objects.get(owner=rep)
    assert channel.smtp.username == "apikey"
    assert channel.read_secret()["password"] == "SG.fresh-sign-in-key"


@pytest.mark.django_db(transaction=True)
def test_once_the_window_has_passed_it_asks_for_the_password_again(acme: Tenant) -> None:
    rep = MembershipFactory(tenant=acme, role=Role.REP, user__email="rep@acme.test").user
    client = _sign_in(rep.email)
    _age_sign_in(client, settings.MSC_STAFF_REAUTH_SECONDS + 1)

    page = client.get(reverse("channels:smtp_edit"))
    assert page.status_code == 302
    assert page["Location"].startswith(reverse("account_reauthenticate"))
    response = client.post(reverse("channels:smtp_edit"), SMTP_POST)
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    assert not Channel.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_admin_signed_in_with_totp_edits_the_team_channel_and_exchange(
    acme: Tenant,
) -> None:
    admin: User = MembershipFactory(
        tenant=acme, role=Role.ADMIN, user__email="admin@acme.test"
    ).user
    client = _sign_in(admin.email, add_totp(admin))

    assert client.get(reverse("channels:team_smtp_edit")).status_code == 200
    assert client.get(reverse("channels:exchange_edit")).status_code == 200
    response = client.post(
        reverse("channels:team_smtp_edit"), {**SMTP_POST, "use_for_all_members": "on"}
    )
    assert response.status_code == 302
    team = Channel.objects.get(owner__isnull=True)
    assert team.use_for_all_members

    _age_sign_in(client, settings.MSC_STAFF_REAUTH_SECONDS + 1)
    again = client.get(reverse("channels:exchange_edit"))
    assert again["Location"].startswith(reverse("account_reauthenticate"))

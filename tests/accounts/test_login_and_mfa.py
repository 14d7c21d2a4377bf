"""Email + password login, TOTP for tenant admins and staff, and the login rate limit."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import (
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
    validate_totp_code,
)
from django.test import Client, override_settings
from django.urls import reverse

from accounts.models import Role, Tenant, User
from tests.channels.conftest import reauthenticate
from tests.conftest import add_totp, totp_code
from tests.factories import PASSWORD, MembershipFactory


def _login(client: Client, email: str, password: str = PASSWORD):
    return client.post(reverse("account_login"), {"login": email, "password": password})


def test_a_rep_signs_in_with_email_and_password(rep_user: User) -> None:
    client = Client()
    response = _login(client, "REP@acme.test")
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert client.get(reverse("home")).status_code == 200


def test_a_wrong_password_is_refused_with_a_message(rep_user: User) -> None:
    response = _login(Client(), "rep@acme.test", "not-the-password")
    assert response.status_code == 200
    assert b"not correct" in response.content


def test_an_admin_with_totp_must_enter_a_code(acme: Tenant) -> None:
    user = MembershipFactory(tenant=acme, role=Role.ADMIN, user__email="boss@acme.test").user
    secret = add_totp(user)
    client = Client()
    response = _login(client, "boss@acme.test")
    assert response["Location"] == reverse("mfa_authenticate")
    # Not signed in yet.
    assert client.get(reverse("home")).status_code == 302
    assert client.post(reverse("mfa_authenticate"), {"code": "000000"}).status_code == 200
    response = client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert response.status_code == 302
    assert client.get(reverse("accounts:users")).status_code == 200


@pytest.mark.parametrize(("into_step", "step"), [(10.0, 0), (26.5, 1), (29.9, 1)])
def test_the_totp_helper_never_hands_out_a_code_about_to_expire(
    monkeypatch: pytest.MonkeyPatch, into_step: float, step: int
) -> None:
    """Near the end of a 30 s step ``totp_code`` waits for the next one, so the code it gives is
    still accepted a few seconds later (allauth has no tolerance for the previous step)."""
    import tests.conftest

    start = 1_000_000_020.0 + into_step  # a multiple of 30, plus the offset into the step
    clock = [start]
    fake = SimpleNamespace(
        time=lambda: clock[0],
        monotonic=lambda: clock[0],
        sleep=lambda seconds: clock.__setitem__(0, clock[0] + seconds),
    )
    monkeypatch.setattr(tests.conftest, "time", fake)
    secret = generate_totp_secret()
    code = totp_code(secret)
    counter = int(start // 30) + step
    assert code == format_hotp_value(hotp_value(secret, counter))
    assert clock[0] - start < 5  # it waited for the clock, boundedly
    # Still the current code when submitted 4 s later.
    monkeypatch.setattr("allauth.mfa.totp.internal.auth.time", fake)
    clock[0] += 4
    assert validate_totp_code(secret, code)


@pytest.mark.parametrize("role", [Role.ADMIN, "staff"])
def test_admins_and_staff_without_totp_must_set_it_up_first(acme: Tenant, role: str) -> None:
    if role == "staff":
        from tests.factories import UserFactory

        user = UserFactory(is_staff=True)
        page = reverse("staff:home")
    else:
        user = MembershipFactory(tenant=acme, role=role).user
        page = reverse("channels:overview")
    client = Client()
    assert _login(client, user.email).status_code == 302
    response = client.get(page)
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_activate_totp")
    # htmx requests are redirected the htmx way.
    response = client.get(page, HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == reverse("mfa_activate_totp")
    # Setting it up asks for the password once more (allauth's re-authentication), then shows
    # the QR code.
    setup = client.get(reverse("mfa_activate_totp"), follow=True)
    assert setup.redirect_chain[-1][0].startswith(reverse("account_reauthenticate"))
    setup = client.post(setup.redirect_chain[-1][0], {"password": PASSWORD}, follow=True)
    assert setup.status_code == 200
    assert setup.redirect_chain[-1][0] == reverse("mfa_activate_totp")
    assert b"data:image/svg+xml;base64" in setup.content

    add_totp(user)
    assert client.get(page).status_code == 200


def test_reps_are_not_forced_into_mfa(rep_client: Client) -> None:
    assert rep_client.get(reverse("channels:overview")).status_code == 200


@override_settings(MSC_REQUIRE_MFA=False)
def test_the_embedded_demo_setting_turns_the_requirement_off(acme: Tenant) -> None:
    user = MembershipFactory(tenant=acme, role=Role.ADMIN).user
    client = Client()
    client.force_login(user)
    assert client.get(reverse("accounts:users")).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_admins_cannot_remove_their_only_second_factor(
    admin_client: Client, admin_user: User
) -> None:
    # Past allauth's re-authentication first, so the POST reaches the adapter's refusal instead
    # of stopping at the password prompt.
    reauthenticate(admin_client)
    response = admin_client.post(reverse("mfa_deactivate_totp"))
    assert response.status_code == 200, response.get("Location")
    assert "You cannot deactivate two-factor authentication." in response.content.decode()
    assert Authenticator.objects.filter(user=admin_user, type="totp").exists()


@pytest.mark.django_db(transaction=True)
def test_a_rep_may_remove_their_own_second_factor(rep_client: Client, rep_user: User) -> None:
    """The same request as above, where nothing requires MFA: it does remove the authenticator,
    so the refusal above is the adapter's doing, not a request that never got through."""
    add_totp(rep_user)
    reauthenticate(rep_client)
    response = rep_client.post(reverse("mfa_deactivate_totp"))
    assert response.status_code == 302 and response["Location"] == reverse("mfa_index")
    assert not Authenticator.objects.filter(user=rep_user, type="totp").exists()


def test_failed_logins_are_rate_limited_per_address(rep_user: User) -> None:
    client = Client()
    for _ in range(5):
        assert _login(client, "rep@acme.test", "wrong-password").status_code == 200
    # The sixth attempt is refused even with the right password.
    response = _login(Client(), "rep@acme.test")
    assert response.status_code in (200, 429)
    assert b"Too many failed login attempts" in response.content
    # The limit lives in the shared cache (Redis under bin/test): clearing it lifts the lock.
    from django.core.cache import cache

    cache.clear()
    assert _login(Client(), "rep@acme.test").status_code == 302


def test_password_reset_sends_a_link_that_works(rep_user: User) -> None:
    from django.core import mail

    client = Client()
    response = client.post(reverse("account_reset_password"), {"email": "rep@acme.test"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    import re

    link = re.search(r"https?://[^/]+(/accounts/password/reset/key/[^\s]+)", mail.outbox[0].body)
    assert link, mail.outbox[0].body
    page = client.get(link.group(1), follow=True)
    assert page.status_code == 200
    target = page.redirect_chain[-1][0] if page.redirect_chain else link.group(1)
    response = client.post(
        target, {"password1": "brand-new-pass-451", "password2": "brand-new-pass-451"}
    )
    assert response.status_code == 302
    rep_user.refresh_from_db()
    assert rep_user.check_password("brand-new-pass-451")


def test_the_login_page_uses_the_site_layout(client: Client, db: None) -> None:
    response = client.get(reverse("account_login"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "/static/css/app.css" in body or "/static/css/app." in body
    assert 'class="topbar"' in body

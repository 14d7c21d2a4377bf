"""Tenant admins invite users by email; the link sets the password and signs the person in."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, Tenant, User


@pytest.fixture(autouse=True)
def _commit_callbacks_run_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Invitations are emailed after commit. The test's wrapping transaction never commits, so
    run each on_commit callback as the request's own transaction would on success."""
    from django.db import transaction

    monkeypatch.setattr(transaction, "on_commit", lambda func, using=None, robust=False: func())


def _invite_link() -> str:
    assert len(mail.outbox) == 1
    match = re.search(r"http://127\.0\.0\.1:8000(/invite/[^\s]+/)", mail.outbox[0].body)
    assert match, mail.outbox[0].body
    return match.group(1)


def test_invite_set_password_and_sign_in(admin_client: Client, acme: Tenant) -> None:
    response = admin_client.post(
        reverse("accounts:users"), {"email": "New.Rep@Acme.test", "role": "rep"}
    )
    assert response.status_code == 302
    membership = Membership.objects.get(user__email="new.rep@acme.test")
    assert membership.tenant == acme and membership.role == "rep"
    assert membership.status == "invited"
    assert not membership.user.has_usable_password()
    assert mail.outbox[0].to == ["new.rep@acme.test"]
    assert "Acme" in mail.outbox[0].subject

    link = _invite_link()
    invitee = Client()
    page = invitee.get(link)
    assert page.status_code == 200
    assert b"new.rep@acme.test" in page.content

    response = invitee.post(
        link,
        {
            "first_name": "Nia",
            "last_name": "Newman",
            "password1": "horse-battery-7-staple",
            "password2": "horse-battery-7-staple",
        },
    )
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert invitee.get(reverse("home")).status_code == 200

    membership.refresh_from_db()
    assert membership.joined_at is not None
    assert membership.user.check_password("horse-battery-7-staple")
    assert EmailAddress.objects.get(user=membership.user).verified

    # The link works once.
    assert Client().get(link).status_code == 404
    # And the new password signs in through the normal login page.
    login = Client().post(
        reverse("account_login"),
        {"login": "new.rep@acme.test", "password": "horse-battery-7-staple"},
    )
    assert login.status_code == 302


def test_weak_or_mismatched_passwords_are_refused_with_a_reason(
    admin_client: Client, acme: Tenant
) -> None:
    admin_client.post(reverse("accounts:users"), {"email": "weak@acme.test", "role": "rep"})
    link = _invite_link()
    invitee = Client()
    response = invitee.post(link, {"password1": "short", "password2": "short"})
    assert response.status_code == 400
    assert b"too short" in response.content
    response = invitee.post(
        link, {"password1": "horse-battery-7-staple", "password2": "other-thing-99-x"}
    )
    assert response.status_code == 400
    assert b"The two passwords differ" in response.content
    assert not User.objects.get(email="weak@acme.test").has_usable_password()


def test_a_tampered_link_is_refused(admin_client: Client, acme: Tenant) -> None:
    admin_client.post(reverse("accounts:users"), {"email": "x@acme.test", "role": "rep"})
    link = _invite_link()
    assert Client().get(link[:-3] + "zz/").status_code == 404
    assert Client().get("/invite/bm90LWEtbnVtYmVy/abc-def/").status_code == 404


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("not-an-address", b"Enter a valid email address"),
        ("", b"This field is required"),
        ("rep@acme.test", b"already has an msc-admin account"),
        ("ADMIN@globex.test", b"already has an msc-admin account"),
    ],
)
def test_bad_invitations_explain_themselves_and_create_nothing(
    admin_client: Client, rep_user: User, outsider_user: User, email: str, message: bytes
) -> None:
    before = User.objects.count()
    response = admin_client.post(reverse("accounts:users"), {"email": email, "role": "rep"})
    assert response.status_code == 400
    assert message in response.content
    assert User.objects.count() == before
    assert mail.outbox == []
    # The value typed is kept so nothing has to be retyped.
    if email:
        assert f'value="{email}"'.encode() in response.content


def test_an_admin_can_invite_another_admin(admin_client: Client, acme: Tenant) -> None:
    admin_client.post(reverse("accounts:users"), {"email": "boss@acme.test", "role": "admin"})
    assert Membership.objects.get(user__email="boss@acme.test").role == "admin"


def test_resend_sends_a_fresh_link(admin_client: Client, acme: Tenant) -> None:
    admin_client.post(reverse("accounts:users"), {"email": "late@acme.test", "role": "rep"})
    membership = Membership.objects.get(user__email="late@acme.test")
    mail.outbox.clear()
    response = admin_client.post(reverse("accounts:membership_resend", args=[membership.pk]))
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and "/invite/" in mail.outbox[0].body


def test_resend_is_refused_for_people_who_joined(admin_client: Client, rep_user: User) -> None:
    response = admin_client.post(
        reverse("accounts:membership_resend", args=[rep_user.membership.pk]), follow=True
    )
    assert b"already joined" in response.content
    assert mail.outbox == []


def test_signup_is_closed(client: Client, db: None) -> None:
    response = client.post(
        reverse("account_signup"),
        {
            "email": "walk-in@example.test",
            "password1": "horse-battery-7-staple",
            "password2": "horse-battery-7-staple",
        },
    )
    assert not User.objects.filter(email="walk-in@example.test").exists()
    assert b"Sign-up is closed" in response.content

"""The tenant admin's Users page: change role and (de)activate, with and without htmx."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from accounts.models import Membership, User


def test_users_page_lists_only_this_tenants_members(
    admin_client: Client, rep_user: User, outsider_user: User
) -> None:
    response = admin_client.get(reverse("accounts:users"))
    assert b"rep@acme.test" in response.content
    assert b"admin@globex.test" not in response.content


def test_changing_a_role_with_htmx_returns_only_the_row(
    admin_client: Client, rep_user: User
) -> None:
    membership = rep_user.membership
    response = admin_client.post(
        reverse("accounts:membership_role", args=[membership.pk]),
        {"role": "admin"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert response["HX-Trigger"] == "members-changed"
    body = response.content.decode()
    assert body.lstrip().startswith(f'<tr id="member-{membership.pk}">')
    assert "<html" not in body
    assert '<option value="admin" selected>' in body
    membership.refresh_from_db()
    assert membership.role == "admin"


def test_changing_a_role_without_htmx_redirects_with_a_message(
    admin_client: Client, rep_user: User
) -> None:
    url = reverse("accounts:membership_role", args=[rep_user.membership.pk])
    response = admin_client.post(url, {"role": "admin"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("accounts:users")
    assert b"is now Tenant admin" in response.content


def test_an_invalid_role_is_refused(admin_client: Client, rep_user: User) -> None:
    url = reverse("accounts:membership_role", args=[rep_user.membership.pk])
    response = admin_client.post(url, {"role": "owner"}, HTTP_HX_REQUEST="true")
    assert b"Choose a valid role" in response.content
    assert Membership.objects.get(user=rep_user).role == "rep"


def test_the_last_admin_cannot_demote_themselves(admin_client: Client, admin_user: User) -> None:
    url = reverse("accounts:membership_role", args=[admin_user.membership.pk])
    response = admin_client.post(url, {"role": "rep"}, HTTP_HX_REQUEST="true")
    assert b"at least one active tenant admin" in response.content
    assert Membership.objects.get(user=admin_user).role == "admin"


def test_deactivating_signs_the_person_out_and_blocks_login(
    admin_client: Client, rep_user: User, rep_client: Client
) -> None:
    url = reverse("accounts:membership_active", args=[rep_user.membership.pk])
    response = admin_client.post(url, {"active": "0"}, HTTP_HX_REQUEST="true")
    assert b"deactivated" in response.content
    rep_user.refresh_from_db()
    assert not rep_user.is_active
    # Their open session no longer works, and they cannot sign in again.
    assert rep_client.get(reverse("home")).status_code == 302
    from tests.factories import PASSWORD

    login = Client().post(
        reverse("account_login"), {"login": "rep@acme.test", "password": PASSWORD}
    )
    assert login.status_code != 302 or "inactive" in login["Location"]

    admin_client.post(url, {"active": "1"})
    rep_user.refresh_from_db()
    assert rep_user.is_active


def test_the_last_admin_cannot_be_deactivated(admin_client: Client, admin_user: User) -> None:
    from tests.factories import MembershipFactory

    other = MembershipFactory(tenant=admin_user.membership.tenant, role="admin").user
    url = reverse("accounts:membership_active", args=[other.membership.pk])
    admin_client.post(url, {"active": "0"})
    other.refresh_from_db()
    assert not other.is_active  # allowed: admin_user remains
    # Now admin_user is the only active admin; a second admin session could not remove them.
    response = admin_client.post(
        reverse("accounts:membership_active", args=[admin_user.membership.pk]),
        {"active": "0"},
        follow=True,
    )
    assert b"at least one active tenant admin" in response.content
    admin_user.refresh_from_db()
    assert admin_user.is_active

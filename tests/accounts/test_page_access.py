"""Each persona's access to each page: anonymous, rep, tenant admin, outsider, staff."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, User

TENANT_PAGES = [
    "home",
    "channels:overview",
    "analytics:overview",
    "analytics:live_feed",
    "accounts:settings",
]
ADMIN_PAGES = ["accounts:users"]
STAFF_PAGES = ["staff:home"]
ALL_PAGES = TENANT_PAGES + ADMIN_PAGES + STAFF_PAGES


@pytest.mark.django_db
@pytest.mark.parametrize("name", TENANT_PAGES + ADMIN_PAGES)
def test_anonymous_visitors_are_sent_to_login(client: Client, name: str) -> None:
    url = reverse(name)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_login')}?next={url}"


@pytest.mark.parametrize("name", TENANT_PAGES)
def test_reps_reach_tenant_pages(rep_client: Client, name: str) -> None:
    response = rep_client.get(reverse(name))
    assert response.status_code == 200
    assert b"Acme" in response.content


@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_reps_are_refused_admin_pages(rep_client: Client, name: str) -> None:
    response = rep_client.get(reverse(name))
    assert response.status_code == 403
    assert b"Only tenant admins" in response.content


@pytest.mark.parametrize("name", TENANT_PAGES + ADMIN_PAGES)
def test_tenant_admins_reach_tenant_and_admin_pages(admin_client: Client, name: str) -> None:
    assert admin_client.get(reverse(name)).status_code == 200


@pytest.mark.parametrize("name", STAFF_PAGES)
@pytest.mark.parametrize("persona", ["rep_client", "admin_client"])
def test_staff_pages_answer_404_to_everyone_else(
    request: pytest.FixtureRequest, persona: str, name: str
) -> None:
    client = request.getfixturevalue(persona)
    assert client.get(reverse(name)).status_code == 404


def test_staff_reach_the_staff_console_and_see_every_tenant(
    staff_client: Client, rep_user: User, outsider_user: User
) -> None:
    response = staff_client.get(reverse("staff:home"))
    assert response.status_code == 200
    assert b"Acme" in response.content and b"Globex" in response.content


@pytest.mark.parametrize("name", TENANT_PAGES)
def test_staff_without_a_tenant_are_sent_to_the_staff_console(
    staff_client: Client, name: str
) -> None:
    response = staff_client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"] == reverse("staff:home")


def test_a_user_without_a_team_gets_a_clear_403(db: None) -> None:
    from tests.factories import UserFactory

    client = Client()
    client.force_login(UserFactory())
    response = client.get(reverse("home"))
    assert response.status_code == 403
    assert b"not a member of any team" in response.content


@pytest.mark.parametrize("name", ["home", "channels:overview", "accounts:users", "staff:home"])
def test_pages_refuse_unsafe_methods_with_405(request: pytest.FixtureRequest, name: str) -> None:
    client = request.getfixturevalue("staff_client" if name.startswith("staff") else "admin_client")
    method = "put" if name == "accounts:users" else "post"
    assert getattr(client, method)(reverse(name)).status_code == 405


@pytest.mark.parametrize(
    "name", ["accounts:membership_role", "accounts:membership_active", "accounts:membership_resend"]
)
def test_member_actions_refuse_get_with_405(
    admin_client: Client, admin_user: User, name: str
) -> None:
    url = reverse(name, args=[admin_user.membership.pk])
    assert admin_client.get(url).status_code == 405


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("accounts:membership_role", {"role": "rep"}),
        ("accounts:membership_active", {"active": "0"}),
        ("accounts:membership_resend", {}),
    ],
)
def test_another_tenants_member_answers_404_and_is_unchanged(
    outsider_client: Client, rep_user: User, name: str, data: dict[str, str]
) -> None:
    target = rep_user.membership
    target.role = "admin"
    target.save()
    response = outsider_client.post(reverse(name, args=[target.pk]), data)
    assert response.status_code == 404
    target.refresh_from_db()
    rep_user.refresh_from_db()
    assert target.role == "admin"
    assert rep_user.is_active


@pytest.mark.parametrize(
    "name", ["accounts:membership_role", "accounts:membership_active", "accounts:membership_resend"]
)
def test_reps_cannot_use_member_actions(rep_client: Client, admin_user: User, name: str) -> None:
    response = rep_client.post(reverse(name, args=[admin_user.membership.pk]), {"role": "rep"})
    assert response.status_code == 403
    assert Membership.objects.get(user=admin_user).role == "admin"


def test_legacy_msc_servers_are_absent_for_modern_tenants(rep_client: Client) -> None:
    response = rep_client.get(reverse("channels:overview"))
    assert b"MSC servers" not in response.content
    assert b"Marketo email servers cannot send this sales email" in response.content


def test_legacy_tenants_see_msc_servers_with_the_deliverability_warning(
    outsider_client: Client,
) -> None:
    response = outsider_client.get(reverse("channels:overview"))
    assert b"MSC servers (legacy)" in response.content
    assert b"not signed with DKIM" in response.content


@pytest.mark.parametrize(
    "path", ["/staff/", "/staff/servers/", "/django-admin/", "/django-admin/login/"]
)
def test_staff_and_django_admin_urls_are_not_advertised_to_visitors(
    client: Client, db: None, path: str
) -> None:
    # Staff sign in at the ordinary login page; these answer 404 to anyone signed out.
    assert client.get(path).status_code == 404


def test_django_admin_is_open_to_staff(staff_client: Client) -> None:
    assert staff_client.get("/django-admin/").status_code == 200

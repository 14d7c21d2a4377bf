"""The Content-Security-Policy and X-Frame-Options headers are on every kind of response."""

from __future__ import annotations

import re

import pytest
from django.templatetags.static import static
from django.test import Client, override_settings
from django.urls import reverse

from accounts.models import User

REQUIRED = ["object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"]


def assert_strict_csp(response) -> None:
    policy = response.headers.get("Content-Security-Policy", "")
    for directive in REQUIRED:
        assert directive in policy, policy
    script_src = re.search(r"script-src ([^;]*)", policy)
    assert script_src, policy
    assert "'unsafe-inline'" not in script_src.group(1)
    assert "'unsafe-eval'" not in policy
    assert response.headers.get("X-Frame-Options") == "DENY"


def assert_scripts_carry_the_nonce(response) -> None:
    """Every script tag on the page has the nonce the header names (never ``nonce="None"``)."""
    body = response.content.decode()
    assert 'nonce="None"' not in body and 'nonce=""' not in body
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)  # type: ignore[union-attr]
    scripts = re.findall(r"<script[^>]*>", body)
    assert scripts, "the layout loads htmx and app.js"
    for tag in scripts:
        assert f'nonce="{nonce}"' in tag, tag


def test_full_pages_carry_the_policy_and_every_script_has_its_nonce(rep_client: Client) -> None:
    response = rep_client.get(reverse("home"))
    assert_strict_csp(response)
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)  # type: ignore[union-attr]
    scripts = re.findall(r"<script[^>]*>", response.content.decode())
    assert scripts, "the layout loads htmx and app.js"
    for tag in scripts:
        assert f'nonce="{nonce}"' in tag, tag
        assert "src=" in tag, "no inline scripts"
    # htmx is served from our own static files, not a CDN.
    assert "/static/vendor/htmx/htmx.min" in response.content.decode()
    assert "//cdn" not in response.content.decode() and "unpkg" not in response.content.decode()


def test_htmx_fragments_carry_the_policy(admin_client: Client, rep_user: User) -> None:
    response = admin_client.post(
        reverse("accounts:membership_role", args=[rep_user.membership.pk]),
        {"role": "rep"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert_strict_csp(response)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["account_login", "account_reset_password", "account_signup"])
def test_allauth_pages_carry_the_policy(client: Client, name: str) -> None:
    assert_strict_csp(client.get(reverse(name)))


def test_mfa_pages_carry_the_policy(admin_client: Client) -> None:
    assert_strict_csp(admin_client.get(reverse("mfa_index")))


@pytest.mark.django_db
def test_404_pages_carry_the_policy(client: Client) -> None:
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert b"Page not found" in response.content
    assert_strict_csp(response)
    assert_scripts_carry_the_nonce(response)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/no-such-page/"])
def test_a_disallowed_host_gets_a_400_page_with_the_policy_and_its_nonce(
    client: Client, path: str
) -> None:
    response = client.get(path, HTTP_HOST="attacker.example")
    assert response.status_code == 400
    assert b"Bad request" in response.content
    assert_strict_csp(response)
    assert_scripts_carry_the_nonce(response)


@pytest.mark.django_db
def test_a_refused_csrf_token_gets_a_403_with_the_policy(client: Client) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("account_login"), {"login": "a@b.test", "password": "x"})
    assert response.status_code == 403
    assert_strict_csp(response)


@pytest.mark.django_db
def test_static_files_carry_the_policy(client: Client) -> None:
    response = client.get(static("css/app.css"))
    assert response.status_code == 200
    assert_strict_csp(response)


def test_403_pages_carry_the_policy(rep_client: Client) -> None:
    response = rep_client.get(reverse("accounts:users"))
    assert response.status_code == 403
    assert_strict_csp(response)


@pytest.mark.django_db
@override_settings(ROOT_URLCONF="tests.msc_admin.boom_urls")
def test_500_pages_carry_the_policy_and_hide_the_error() -> None:
    client = Client(raise_request_exception=False)
    response = client.get("/boom/")
    assert response.status_code == 500
    assert b"Something went wrong on our side" in response.content
    assert b"kaboom" not in response.content
    assert_strict_csp(response)
    assert b"nonce=" not in response.content  # the bare page loads no script at all


@pytest.mark.django_db
def test_json_responses_carry_the_policy(client: Client) -> None:
    assert_strict_csp(client.get(reverse("health")))


def test_the_page_sets_csrf_for_htmx_on_body(rep_client: Client) -> None:
    body = rep_client.get(reverse("home")).content.decode()
    assert re.search(r"<body hx-headers='\{\"x-csrftoken\": \"[A-Za-z0-9]+\"\}'>", body)


def test_htmx_posts_without_the_csrf_header_are_refused(admin_user: User, rep_user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    url = reverse("accounts:membership_role", args=[rep_user.membership.pk])
    response = client.post(url, {"role": "admin"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 403
    assert rep_user.membership.__class__.objects.get(pk=rep_user.membership.pk).role == "rep"
    # With the token from the page's hx-headers, the same request goes through.
    page = client.get(reverse("accounts:users")).content.decode()
    token = re.search(r'"x-csrftoken": "([^"]+)"', page).group(1)  # type: ignore[union-attr]
    response = client.post(url, {"role": "admin"}, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200

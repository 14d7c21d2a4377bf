"""The embedded demo runs with DEBUG on, and still answers with the product's own 404 and 500
pages, never Django's debug pages (every URL pattern, a traceback, the settings)."""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db

DEBUG_PAGE_WORDS = ("URLconf", "DEBUG = True", "Traceback", "Request Method")


@pytest.fixture
def demo_settings(settings) -> None:
    """What ``bin/run`` runs with: DEBUG on, MSC_DEBUG_PAGES left at its default."""
    settings.DEBUG = True
    settings.MSC_REQUIRE_MFA = False


def _ours_404(response) -> str:
    page = response.content.decode()
    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in page
    assert not [w for w in DEBUG_PAGE_WORDS if w in page]
    assert "Content-Security-Policy" in response.headers
    return page


def test_an_unknown_url_answers_our_404(demo_settings: None, rep_client: Client) -> None:
    _ours_404(rep_client.get("/no-such-page/"))
    _ours_404(Client().get("/no-such-page/"))  # signed out too
    # Django's slash redirect still comes first.
    response = rep_client.get("/outbox")
    assert response.status_code == 301 and response["Location"] == "/outbox/"


def test_a_404_raised_by_a_view_or_a_middleware_is_ours(
    demo_settings: None, rep_client: Client
) -> None:
    _ours_404(rep_client.get(reverse("sending:outbox_folder", args=["nonsense"])))
    _ours_404(rep_client.get("/staff/"))  # the staff gate refuses non-staff with a 404
    _ours_404(Client().get("/django-admin/"))


def test_a_view_that_renders_its_own_404_keeps_its_words(demo_settings: None) -> None:
    response = Client().get(reverse("channels:identity_verify", args=["not-a-token"]))
    page = response.content.decode()
    assert response.status_code == 404 and "<h1>Page not found</h1>" not in page
    assert not [w for w in DEBUG_PAGE_WORDS if w in page]


def test_an_error_answers_our_500_and_logs_the_traceback(
    demo_settings: None, settings, rep_user: User, caplog
) -> None:
    settings.ROOT_URLCONF = "tests.msc_admin.boom_urls"
    client = Client(raise_request_exception=False)
    client.force_login(rep_user)
    with caplog.at_level(logging.ERROR):
        response = client.get("/boom/")
    page = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in page
    assert "kaboom" not in page and not [w for w in DEBUG_PAGE_WORDS if w in page]
    assert any(r.exc_info and "kaboom" in str(r.exc_info[1]) for r in caplog.records)


def test_developers_can_have_the_debug_pages_back(demo_settings: None, settings) -> None:
    settings.MSC_DEBUG_PAGES = True
    response = Client().get("/no-such-page/")
    assert response.status_code == 404 and b"URLconf" in response.content

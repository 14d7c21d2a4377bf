"""Opening a form's address directly (a button's action, or a failed form's page reloaded) says
what happened instead of showing Django's empty 405."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_browser_opening_a_form_only_address_gets_a_page_that_says_so(
    admin_client: Client,
) -> None:
    came_from = "http://testserver" + reverse("sending:suppressions")
    response = admin_client.get(reverse("sending:suppressions_remove"), HTTP_REFERER=came_from)
    assert response.status_code == 405 and response["Allow"] == "POST"
    page = response.content.decode()
    assert "This address only takes a form sent from its page" in page
    assert f'href="{came_from}"' in page and "Back to the dashboard" in page
    assert "Content-Security-Policy" in response.headers


def test_other_sites_are_not_linked_and_htmx_and_json_answers_are_left_alone(
    admin_client: Client,
) -> None:
    url = reverse("sending:suppressions_remove")
    page = admin_client.get(url, HTTP_REFERER="https://evil.example/x").content.decode()
    assert "evil.example" not in page and "Back to the page you came from" not in page
    assert admin_client.get(url, HTTP_HX_REQUEST="true").content == b""
    api = admin_client.get(reverse("sending:api_messages"))
    assert api.status_code == 405 and api["Content-Type"].startswith("application/json")

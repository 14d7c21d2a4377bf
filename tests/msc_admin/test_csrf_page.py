"""A form refused by Django's CSRF check answers with the product's own page, in the reader's
language, and changes nothing (Django's default page is written for developers, in English)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db(transaction=True)  # request paths: autocommit, as served

DJANGO_WORDS = ("CSRF verification failed", "Forbidden", "CSRF_FAILURE_VIEW")


def test_a_signed_in_form_without_its_token_gets_our_page_and_changes_nothing(
    rep_user: User,
) -> None:
    before = rep_user.first_name
    client = Client(enforce_csrf_checks=True)
    client.force_login(rep_user)
    response = client.post(reverse("accounts:name"), {"first_name": "Mallory", "last_name": "X"})
    page = response.content.decode()
    assert response.status_code == 403
    assert "<h1>Not allowed</h1>" in page
    assert "Go back, reload the page and try again; nothing was changed." in page
    assert reverse("home") in page  # the layout, with its way back
    assert not [w for w in DJANGO_WORDS if w in page]
    rep_user.refresh_from_db()
    assert rep_user.first_name == before


@pytest.mark.parametrize(
    ("language", "words"),
    [("pt-br", "Volte, recarregue a página"), ("es", "Vuelve atrás, recarga la página")],
)
def test_the_page_speaks_the_readers_language(language: str, words: str) -> None:
    client = Client(enforce_csrf_checks=True, headers={"accept-language": language})
    response = client.post(reverse("account_login"), {"login": "a@b.test", "password": "x"})
    assert response.status_code == 403
    assert words in response.content.decode()

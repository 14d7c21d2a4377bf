"""Examples on the pages (an address to search for, a merge field's fallback) are written in
the reader's language; the merge-field syntax stays as typed."""

from __future__ import annotations

import html

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from channels.models import Identity

pytestmark = pytest.mark.django_db(transaction=True)  # request paths: autocommit, as served


@pytest.mark.parametrize(
    ("language", "address", "fallback"),
    [
        ("pt-br", "nome@empresa.com", "{{first_name|pessoal}}"),
        ("es", "nombre@empresa.com", "{{first_name|equipo}}"),
    ],
)
def test_the_examples_read_in_the_readers_language(
    rep_user: User, rep_identity: Identity, language: str, address: str, fallback: str
) -> None:
    User.objects.filter(pk=rep_user.pk).update(language=language)
    client = Client()
    client.force_login(rep_user)
    outbox = client.get(reverse("sending:outbox")).content.decode()
    assert f'placeholder="{address}"' in outbox and "name@company.com" not in outbox
    new = html.unescape(client.get(reverse("sending:template_new")).content.decode())
    assert fallback in new and "{{first_name|there}}" not in new

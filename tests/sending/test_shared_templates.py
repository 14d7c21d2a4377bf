"""A template shared by someone else: a rep sees it and may use it, but is not offered to
change or delete it (both would be refused); its author and the admins are."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from sending.models import Template


@pytest.fixture
def shared(acme: Tenant, admin_user: User) -> Template:
    return Template.objects.create(
        tenant=acme, owner=admin_user, name="Team intro", subject="Hi", body="Hello", shared=True
    )


def test_a_rep_sees_a_shared_template_without_save_or_delete(
    rep_client: Client, shared: Template
) -> None:
    url = reverse("sending:template_edit", args=[shared.pk])
    page = rep_client.get(url).content.decode()
    assert "Team intro" in page and "only its author or a tenant admin can change it" in page
    assert "Save template" not in page and "Delete template" not in page
    assert 'method="post"' not in page.split("</header>", 1)[1].split("<footer", 1)[0]
    assert 'name="subject"' in page and "disabled" in page
    # Posting anyway is refused, and nothing changes.
    data = {"name": "Mine now", "subject": "x", "body": "x"}
    assert rep_client.post(url, data).status_code == 403
    assert rep_client.post(reverse("sending:template_delete", args=[shared.pk])).status_code == 403
    shared.refresh_from_db()
    assert shared.name == "Team intro"


def test_its_author_and_the_admins_may_change_it(admin_client: Client, shared: Template) -> None:
    url = reverse("sending:template_edit", args=[shared.pk])
    page = admin_client.get(url).content.decode()
    assert "Save template" in page and "Delete template" in page
    data = {"name": "Team intro v2", "subject": "Hi", "body": "Hello", "shared": "on"}
    assert admin_client.post(url, data).status_code == 302
    shared.refresh_from_db()
    assert shared.name == "Team intro v2"

"""Compose: choosing a template fills Subject and Body at once (htmx), or without JavaScript."""

from __future__ import annotations

import html
import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Role, Tenant, User
from channels.models import Identity
from sending.models import Message, Template
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true", "HX-Target": "compose-text"}


@pytest.fixture
def templates(acme: Tenant, admin_user: User) -> tuple[Template, Template]:
    intro = Template.objects.create(
        tenant=acme,
        owner=admin_user,
        name="Intro",
        subject="Quick question, {{first_name|there}}",
        body="Hi {{first_name|there}},\nA short note.\n\n{{sender_name}}",
        shared=True,
    )
    follow = Template.objects.create(
        tenant=acme,
        owner=admin_user,
        name="Follow-up",
        subject="Following up",
        body="Just checking in.",
        shared=True,
    )
    return intro, follow


def _fields(page: str) -> tuple[str, str]:
    subject = re.search(r'<input type="text" name="subject"[^>]*value="([^"]*)"', page)
    body = re.search(r'<textarea name="body"[^>]*>\n?(.*?)</textarea>', page, re.S)
    return (
        html.unescape(subject.group(1)) if subject else "",
        html.unescape(body.group(1)) if body else "",
    )


def test_choosing_a_template_answers_htmx_with_its_subject_and_body(
    rep_client: Client, templates: tuple[Template, Template], rep_identity: Identity
) -> None:
    intro, _ = templates
    page = rep_client.get(reverse("sending:compose")).content.decode()
    # The select is wired to fetch the fields; the fields' wrapper is the target.
    assert f'hx-get="{reverse("sending:compose")}"' in page and 'id="compose-text"' in page
    assert 'hx-trigger="change from:#id_template"' in page

    response = rep_client.get(
        reverse("sending:compose"),
        {"template": intro.pk, "subject": "", "body": ""},
        headers=HTMX,
    )
    fragment = response.content.decode()
    assert response.status_code == 200
    assert fragment.lstrip().startswith('<div id="compose-text">') and "<html" not in fragment
    assert _fields(fragment) == (intro.subject, intro.body)
    assert Message.objects.count() == 0


def test_choosing_another_template_replaces_its_text_but_never_the_persons_own(
    rep_client: Client, templates: tuple[Template, Template], rep_identity: Identity
) -> None:
    intro, follow = templates
    url = reverse("sending:compose")
    # Switching templates: the fields hold the first one's text (as a browser sends it).
    switched = rep_client.get(
        url,
        {"template": follow.pk, "subject": intro.subject, "body": intro.body.replace("\n", "\r\n")},
        headers=HTMX,
    ).content.decode()
    assert _fields(switched) == (follow.subject, follow.body)
    # What the person wrote stays; only the empty field is filled.
    own = rep_client.get(
        url, {"template": follow.pk, "subject": "My own words", "body": ""}, headers=HTMX
    ).content.decode()
    assert _fields(own) == ("My own words", follow.body)


def test_a_template_the_person_cannot_use_fills_nothing(
    rep_client: Client, acme: Tenant, globex: Tenant, outsider_user: User, rep_identity: Identity
) -> None:
    colleague = MembershipFactory(tenant=acme, role=Role.REP, user__email="other@acme.test").user
    private = Template.objects.create(
        tenant=acme, owner=colleague, name="Mine", subject="Private", body="p", shared=False
    )
    foreign = Template.objects.create(
        tenant=globex, owner=outsider_user, name="Theirs", subject="Globex", body="g", shared=True
    )
    for template in (private, foreign):
        fragment = rep_client.get(
            reverse("sending:compose"), {"template": template.pk}, headers=HTMX
        ).content.decode()
        assert _fields(fragment) == ("", "")


def test_without_javascript_use_this_template_posts_back_and_keeps_what_was_typed(
    rep_client: Client, templates: tuple[Template, Template], rep_identity: Identity
) -> None:
    intro, _ = templates
    page = rep_client.get(reverse("sending:compose")).content.decode()
    assert re.search(r'<noscript><button type="submit" name="action" value="template"', page)
    response = rep_client.post(
        reverse("sending:compose"),
        {
            "action": "template",
            "identity": rep_identity.pk,
            "to": "pat@prospect.test",
            "template": intro.pk,
            "subject": "",
            "body": "",
        },
    )
    page = response.content.decode()
    assert response.status_code == 200 and "<html" in page
    assert _fields(page) == (intro.subject, intro.body)
    assert 'value="pat@prospect.test"' in page
    assert re.search(rf'<option value="{intro.pk}" selected>Intro</option>', page)
    assert "This field is required" not in page  # nothing was submitted yet
    assert Message.objects.count() == 0

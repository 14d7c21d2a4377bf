"""The plugins' JSON endpoint, answer by answer: each refusal keeps its status and exact JSON, and
an accepted message is stored as asked (merge fields filled in, template, schedule, source)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from channels.models import BlockedDomain, Identity
from sending import merge
from sending.models import ApiToken, Contact, Message, MessageStatus, Template
from sending.services import api_token_create

pytestmark = pytest.mark.django_db(transaction=True)  # a request path: autocommit, as served

URL = "/api/v1/messages"
KNOWN = ", ".join("{{" + f + "}}" for f in merge.FIELDS)


@pytest.fixture
def token(acme: Tenant, rep_user: User, rep_identity: Identity) -> str:
    _, value = api_token_create(tenant=acme, user=rep_user, name="Gmail plugin")
    return value


def post(token: str | None, payload: Any, *, raw: bytes | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = raw if raw is not None else json.dumps(payload).encode()
    return Client().post(URL, body, content_type="application/json", headers=headers)


def test_the_url_is_the_documented_one() -> None:
    assert reverse("sending:api_messages") == URL


def test_no_token_is_refused_with_a_bearer_challenge(token: str) -> None:
    for answer in (post(None, {}), post("msc_wrong", {}), post("nope " + token, {})):
        assert answer.status_code == 401
        assert answer.json() == {
            "error": "A valid API token is required: Authorization: Bearer msc_…"
        }
        assert answer["WWW-Authenticate"] == 'Bearer realm="msc-admin"'
    assert Message.objects.count() == 0


def test_a_body_too_large_or_not_a_json_object_is_refused(token: str) -> None:
    big = post(token, None, raw=b'{"body": "' + b"x" * (256 * 1024) + b'"}')
    assert (big.status_code, big.json()) == (413, {"error": "The request is larger than 256 KB."})
    for raw in (b"[", b"[1, 2]", b'"text"', b"", b"\xff"):
        answer = post(token, None, raw=raw)
        assert (answer.status_code, answer.json()) == (
            400,
            {"error": "The body must be a JSON object."},
        ), raw
    assert Message.objects.count() == 0


def test_each_invalid_field_is_named_in_the_order_of_the_fields(token: str) -> None:
    answer = post(token, {"source": "web", "template_id": "abc", "send_at": "tomorrow"})
    assert answer.status_code == 400
    data = answer.json()
    assert data == {
        "error": "Some fields are not valid.",
        "fields": {
            "source": "One of: api, gmail_plugin, o365_plugin.",
            "template_id": "No such template.",
            "to": "Required.",
            "subject": "Required.",
            "body": "Required.",
            "send_at": "An ISO 8601 time with a time zone, e.g. 2026-12-01T09:00:00Z.",
        },
    }
    assert list(data["fields"]) == ["source", "template_id", "to", "subject", "body", "send_at"]
    naive = post(
        token,
        {"to": "a@b.test", "subject": "s", "body": "b", "from": "nobody@acme.test",
         "send_at": "2030-01-01T09:00:00"},
    )  # fmt: skip
    assert naive.json() == {
        "error": "Some fields are not valid.",
        "fields": {
            "from": "Not one of your sending identities.",
            "send_at": "An ISO 8601 time with a time zone, e.g. 2026-12-01T09:00:00Z.",
        },
    }
    assert Message.objects.count() == 0


def test_other_tenants_templates_do_not_exist_here(
    token: str, outsider_user: User, globex: Tenant
) -> None:
    theirs = Template.objects.create(
        tenant=globex, owner=outsider_user, name="T", subject="S", body="B", shared=True
    )
    answer = post(token, {"to": "a@b.test", "template_id": theirs.pk})
    assert answer.json() == {
        "error": "Some fields are not valid.",
        "fields": {"template_id": "No such template.", "subject": "Required.", "body": "Required."},
    }


def test_refusals_after_the_fields_say_why_in_one_sentence(token: str, acme: Tenant) -> None:
    BlockedDomain.objects.create(tenant=acme, domain="rival.test")
    blocked = post(token, {"to": "Pat@Sales.Rival.test", "subject": "s", "body": "b"})
    assert (blocked.status_code, blocked.json()) == (
        400,
        {
            "error": "rival.test is on your team's list of blocked domains.",
            "fields": {"to": "Blocked domain."},
        },
    )
    unknown = post(token, {"to": "a@b.test", "subject": "Hi {{nope}}", "body": "b"})
    assert (unknown.status_code, unknown.json()) == (
        400,
        {"error": f"Unknown merge field {{{{nope}}}}. Available: {KNOWN}."},
    )
    bad = post(token, {"to": "not-an-address", "subject": "s", "body": "b"})
    assert (bad.status_code, bad.json()) == (400, {"error": "Enter a valid email address."})
    plugin = post(token, {"to": "a@b.test", "subject": "s", "body": "b", "source": "gmail_plugin"})
    assert (plugin.status_code, plugin.json()) == (
        400,
        {"error": "Connect Gmail to send from the Gmail plugin."},
    )
    assert Message.objects.count() == 0


def test_an_accepted_message_is_stored_as_asked(
    token: str, acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    Contact.objects.create(tenant=acme, owner=rep_user, email="pat@prospect.test", first_name="Pat")
    template = Template.objects.create(
        tenant=acme,
        owner=rep_user,
        name="Intro",
        subject="Hi {{first_name}}",
        body="From {{sender_name}}",
    )
    later = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    answer = post(
        token,
        {"to": " PAT@prospect.test ", "template_id": str(template.pk), "subject": "",
         "send_at": later.isoformat()},
    )  # fmt: skip
    assert answer.status_code == 202, answer.content
    data = answer.json()
    message = Message.objects.get()
    assert data == {
        "id": message.pk,
        "status": MessageStatus.SCHEDULED,
        "message_id": message.message_id,
        "channel": message.channel.label,
        "source": "api",
    }
    assert (message.to_email, message.subject, message.body) == (
        "pat@prospect.test",
        "Hi Pat",
        f"From {rep_identity.name}",
    )
    assert message.template == template and message.identity == rep_identity
    assert message.contact is not None and message.contact.first_name == "Pat"
    assert message.scheduled_at == later
    assert ApiToken.objects.get().last_used_at is not None


def test_a_time_that_does_not_exist_is_a_field_error_not_a_crash(token: str) -> None:
    answer = post(
        token, {"to": "a@b.test", "subject": "s", "body": "b", "send_at": "2026-13-45T09:00:00Z"}
    )
    assert (answer.status_code, answer.json()) == (
        400,
        {
            "error": "Some fields are not valid.",
            "fields": {"send_at": "An ISO 8601 time with a time zone, e.g. 2026-12-01T09:00:00Z."},
        },
    )
    assert Message.objects.count() == 0

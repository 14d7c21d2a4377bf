"""SendGrid and SparkPost event webhooks: authenticated per channel, bounces only, counted once."""

from __future__ import annotations

import base64
import json
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.models import Tenant, User
from bounces.models import Attribution, BounceEvent, EspWebhook
from channels.esp import metadata_headers
from channels.kinds import ChannelKind
from channels.models import Channel, Identity
from sending import mime, pipeline
from sending.models import Message, MessageStatus, Suppression, SuppressionReason
from tests.bounces.conftest import mark_sent
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(acme: Tenant, rep_user: User, rep_identity: Identity) -> Message:
    return mark_sent(queue_message(acme, rep_user, rep_identity))


def _issue(client: Client, channel: Channel, provider: str) -> tuple[str, str]:
    """Set the webhook up as an admin does; returns (path, basic auth header)."""
    answer = client.post(
        reverse("bounces:webhook_issue", args=[channel.pk]),
        {"provider": provider},
        HTTP_HX_REQUEST="true",
    )
    assert answer.status_code == 200, answer.content[:300]
    page = answer.content.decode()
    assert "its secret is not shown again" in page
    found = re.search(r'value="http://(msc):([^@"]+)@testserver(/webhooks/[^"]+)"', page)
    assert found, page
    auth = base64.b64encode(f"{found.group(1)}:{found.group(2)}".encode()).decode()
    return found.group(3), f"Basic {auth}"


def _post(path: str, auth: str, payload: object) -> int:
    return (
        Client()
        .post(path, json.dumps(payload), content_type="application/json", HTTP_AUTHORIZATION=auth)
        .status_code
    )


def _sendgrid_bounce(message: Message, event_id: str = "sg-ev-1") -> dict[str, object]:
    return {
        "email": message.to_email,
        "timestamp": 1795000000,
        "smtp-id": message.message_id,
        "event": "bounce",
        "category": ["cold"],
        "sg_event_id": event_id,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
        "status": "5.1.1",
        "type": "bounce",
    }


def test_a_sendgrid_bounce_is_recorded_once_and_other_events_are_ignored(
    admin_client: Client, team_channel: Channel, sent: Message
) -> None:
    path, auth = _issue(admin_client, team_channel, "sendgrid")
    delivered = {"email": "x@y.test", "event": "delivered", "sg_event_id": "sg-ev-2"}
    payload = [_sendgrid_bounce(sent), delivered]
    assert _post(path, auth, payload) == 200
    (event,) = BounceEvent.objects.all()
    assert (event.source, event.attributed_by, event.channel) == (
        "webhook",
        Attribution.MESSAGE_ID,
        team_channel,
    )
    assert (event.reason, event.hard, event.status, event.smtp_code) == (
        "userunknown",
        True,
        "5.1.1",
        "550",
    )
    assert json.loads(bytes(event.raw))["sg_event_id"] == "sg-ev-1"
    sent.refresh_from_db()
    assert sent.status == MessageStatus.BOUNCED

    assert _post(path, auth, payload) == 200  # SendGrid retries a post: nothing counts twice
    assert BounceEvent.objects.count() == 1
    webhook = EspWebhook.objects.get()
    assert (webhook.events_received, webhook.bounces_recorded) == (4, 1)
    page = admin_client.get(reverse("channels:team")).content.decode()
    assert "SendGrid webhook" in page and "4 events received, 1 bounce recorded" in page


def test_webhook_posts_are_authenticated_per_channel(
    admin_client: Client, team_channel: Channel, sent: Message
) -> None:
    path, auth = _issue(admin_client, team_channel, "sendgrid")
    wrong = "Basic " + base64.b64encode(b"msc:guessed").decode()
    assert _post(path, wrong, [_sendgrid_bounce(sent)]) == 401
    assert Client().post(path, "[]", content_type="application/json").status_code == 401
    assert _post(path.replace("sendgrid", "sparkpost"), auth, []) == 404  # key is per provider
    assert _post("/webhooks/sendgrid/no-such-key/", auth, []) == 404
    assert _post(path, auth, {"not": "a list"}) == 400
    assert BounceEvent.objects.count() == 0

    # A new secret retires the old one.
    new_path, new_auth = _issue(admin_client, team_channel, "sendgrid")
    assert new_path == path and new_auth != auth
    assert _post(path, auth, [_sendgrid_bounce(sent)]) == 401
    assert _post(path, new_auth, [_sendgrid_bounce(sent)]) == 200
    assert BounceEvent.objects.count() == 1


def _sparkpost_bounce(message: Message, event_id: str = "92356927693813856") -> dict[str, object]:
    return {
        "msys": {
            "message_event": {
                "type": "bounce",
                "bounce_class": "10",
                "event_id": event_id,
                "raw_rcpt_to": message.to_email,
                "raw_reason": "550 5.1.1 <pat@prospect.test>: Recipient address rejected",
                "timestamp": "1795000000",
            }
        }
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", ["sendgrid", "sparkpost"])
@pytest.mark.parametrize("credentials", ["missing", "wrong user", "wrong secret"])
def test_posts_without_the_right_credentials_get_401_and_record_nothing(
    admin_client: Client, team_channel: Channel, sent: Message, provider: str, credentials: str
) -> None:
    path, auth = _issue(admin_client, team_channel, provider)
    secret = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")[2]
    headers = {
        "missing": {},
        "wrong user": {"HTTP_AUTHORIZATION": _basic(f"admin:{secret}")},
        "wrong secret": {"HTTP_AUTHORIZATION": _basic("msc:" + secret[::-1])},
    }[credentials]
    bounce = _sendgrid_bounce(sent) if provider == "sendgrid" else _sparkpost_bounce(sent)
    response = Client().post(path, json.dumps([bounce]), content_type="application/json", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith('Basic realm="')
    assert BounceEvent.objects.count() == 0
    sent.refresh_from_db()
    assert sent.status == MessageStatus.SENT
    webhook = EspWebhook.objects.get()
    assert (webhook.events_received, webhook.bounces_recorded, webhook.last_event_at) == (
        0,
        0,
        None,
    )
    # The same post with the right credentials is recorded.
    assert _post(path, auth, [bounce]) == 200
    assert BounceEvent.objects.count() == 1


def _basic(user_and_secret: str) -> str:
    return "Basic " + base64.b64encode(user_and_secret.encode()).decode()


def test_a_sparkpost_bounce_is_matched_by_the_token_we_sent_in_its_metadata(
    admin_client: Client, team_channel: Channel, sent: Message
) -> None:
    path, auth = _issue(admin_client, team_channel, "sparkpost")
    token = mime.token_of(sent.message_id)
    bounce = {
        "type": "bounce",
        "bounce_class": "10",
        "event_id": "92356927693813856",
        "raw_rcpt_to": sent.to_email.upper(),
        "raw_reason": "550 5.1.1 <pat@prospect.test>: Recipient address rejected: User unknown",
        "timestamp": "1795000000",
        "transmission_id": "65832150921904138",
        "rcpt_meta": {"msc_message": token},
    }
    vacation = {**bounce, "event_id": "2", "bounce_class": "60", "raw_reason": "Out of office"}
    payload = [
        {"msys": {}},
        {"msys": {"message_event": bounce}},
        {"msys": {"message_event": vacation}},
    ]
    assert _post(path, auth, payload) == 200
    (event,) = BounceEvent.objects.all()
    assert event.attributed_by == Attribution.PROVIDER and event.message == sent
    assert event.recipient == "pat@prospect.test" and event.hard
    assert _post(path, auth, payload) == 200
    assert BounceEvent.objects.count() == 1


def test_addresses_an_esp_drops_as_undeliverable_are_suppressed(
    admin_client: Client, team_channel: Channel, acme: Tenant
) -> None:
    path, auth = _issue(admin_client, team_channel, "sendgrid")
    dropped = {"event": "dropped", "timestamp": 1795000000, "reason": "Bounced Address"}
    payload = [
        {**dropped, "email": "Dead@Prospect.test", "sg_event_id": "d1"},
        {**dropped, "email": "typo@prospect.test", "sg_event_id": "d2", "reason": "Invalid"},
        {**dropped, "email": "left@prospect.test", "sg_event_id": "d3", "reason": "Unsubscribed"},
        {"event": "spamreport", "email": "angry@prospect.test", "sg_event_id": "c1"},
    ]
    assert _post(path, auth, payload) == 200
    found = Suppression.objects.filter(tenant=acme).order_by("address")
    assert [(s.address, s.reason) for s in found] == [
        ("angry@prospect.test", SuppressionReason.COMPLAINT),
        ("dead@prospect.test", SuppressionReason.ESP_DROPPED),
        ("typo@prospect.test", SuppressionReason.ESP_DROPPED),
    ]
    assert found[0].why.startswith("Marked as spam, reported by SendGrid on ")
    assert found[1].why.startswith("Dropped by SendGrid on ")
    assert found[1].why.endswith(": Bounced Address")
    # Stored as a sentence, read in the reader's language (the ESP's words as it said them).
    with translation.override("pt-br"):
        assert found[1].why.startswith("Descartado pelo SendGrid em ")
        assert found[1].why.endswith(": Bounced Address")
    assert not BounceEvent.objects.exists()  # not a bounce of a message we sent

    path, auth = _issue(admin_client, team_channel, "sparkpost")
    rejected = {
        "type": "policy_rejection",
        "bounce_class": "10",
        "event_id": "p1",
        "raw_rcpt_to": "gone@prospect.test",
        "reason": "550 5.7.1 recipient address was suppressed due to policy",
        "timestamp": "1795000000",
    }
    soft = {**rejected, "event_id": "p2", "bounce_class": "22", "raw_rcpt_to": "full@x.test"}
    payload2 = [{"msys": {"message_event": rejected}}, {"msys": {"message_event": soft}}]
    assert _post(path, auth, payload2) == 200
    gone = Suppression.objects.get(address="gone@prospect.test")
    assert gone.reason == SuppressionReason.ESP_DROPPED and gone.why.startswith(
        "Dropped by SparkPost"
    )
    assert not Suppression.objects.filter(address="full@x.test").exists()


def test_only_admins_set_up_the_team_webhook_and_only_for_custom_smtp(
    rep_client: Client, outsider_user: User, team_channel: Channel, acme: Tenant, rep_user: User
) -> None:
    url = reverse("bounces:webhook_issue", args=[team_channel.pk])
    assert rep_client.post(url, {"provider": "sendgrid"}).status_code == 403
    other = Client()
    other.force_login(outsider_user)
    assert other.post(url, {"provider": "sendgrid"}).status_code in (302, 404)
    gmail = Channel.objects.create(tenant=acme, owner=rep_user, kind=ChannelKind.GMAIL)
    gmail_url = reverse("bounces:webhook_issue", args=[gmail.pk])
    assert rep_client.post(gmail_url, {"provider": "sendgrid"}).status_code == 404
    assert not EspWebhook.objects.exists()


def test_mail_through_sendgrid_or_sparkpost_carries_our_token_for_their_events(
    acme: Tenant, team_channel: Channel
) -> None:
    assert metadata_headers("smtp.sendgrid.net", "abc") == [
        ("X-SMTPAPI", '{"unique_args": {"msc_message": "abc"}}')
    ]
    assert metadata_headers("smtp.sparkpostmail.com", "abc")[0][0] == "X-MSYS-API"
    assert metadata_headers("mail.example.com", "abc") == []
    Channel.objects.filter(pk=team_channel.pk).update(
        config={**team_channel.config, "host": "smtp.sendgrid.net"}
    )
    team_channel.refresh_from_db()
    headers = pipeline._esp_headers(team_channel, "<msc.tok123@acme.test>")
    data = mime.build(
        message_id="<msc.tok123@acme.test>",
        from_email="rep@acme.test",
        from_name="Rep",
        to_email="pat@prospect.test",
        subject="Hi",
        body="Hello",
        extra_headers=headers,
    )
    assert b'X-SMTPAPI: {"unique_args": {"msc_message": "tok123"}}' in data

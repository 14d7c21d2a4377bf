"""After Send, compose lands where the email is by then, says so in words, and "Send later"
names its time zone; a browser opening the API's address is told what to do there."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from channels.models import Channel, Identity
from msc_admin.devtls import Certificates
from sending.models import Message, MessageStatus
from tests.mailservers import SmtpServer, smtp_server
from tests.sending.conftest import RELAY_PASSWORD, RELAY_USER


def _compose(client: Client, identity: Identity, **extra: str):
    data = {"identity": identity.pk, "to": "pat@prospect.test", "subject": "Hi", "body": "Hello"}
    return client.post(reverse("sending:compose"), {**data, **extra})


@pytest.mark.django_db(transaction=True)  # as served: the send task runs as the request commits
def test_compose_lands_where_the_email_is_by_then(
    rep_client: Client, rep_identity: Identity, relay: SmtpServer
) -> None:
    response = _compose(rep_client, rep_identity)
    message = Message.objects.get()
    assert message.status == MessageStatus.SENT  # already sent, as in the demo
    sent = reverse("sending:outbox_folder", args=["sent"])
    assert response["Location"] == f"{sent}#message-{message.pk}"
    page = rep_client.get(response["Location"]).content.decode()
    assert "Sent the email to pat@prospect.test." in page
    assert f'id="message-{message.pk}"' in page
    assert "Queued the email" not in page


@pytest.mark.django_db(transaction=True)
def test_compose_lands_in_failed_when_the_server_refused_it(
    rep_client: Client, rep_identity: Identity, team_channel: Channel, certs: Certificates
) -> None:
    with smtp_server(
        cert=certs.trusted,
        users={RELAY_USER: RELAY_PASSWORD},
        replies=["550 5.7.1 Message rejected as spam"],
    ) as refusing:
        team_channel.config = {**team_channel.config, "port": refusing.port}
        team_channel.save(update_fields=["config"])
        response = _compose(rep_client, rep_identity)
    message = Message.objects.get()
    assert message.status == MessageStatus.FAILED
    assert response["Location"].startswith(reverse("sending:outbox_folder", args=["failed"]))
    page = rep_client.get(response["Location"]).content.decode()
    assert "The email to pat@prospect.test could not be sent" in page


@pytest.mark.django_db(transaction=True)
def test_send_later_names_its_time_zone_and_the_email_keeps_that_time(
    rep_client: Client, rep_identity: Identity, relay: SmtpServer, settings
) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    page = rep_client.get(reverse("sending:compose")).content.decode()
    assert "Time in Europe/Paris. Leave empty to send now." in page
    later = timezone.localtime(timezone.now() + timedelta(hours=2)).replace(second=0, microsecond=0)
    response = _compose(rep_client, rep_identity, send_at=later.strftime("%Y-%m-%dT%H:%M"))
    message = Message.objects.get()
    assert message.status == MessageStatus.SCHEDULED and message.scheduled_at == later
    assert response["Location"].startswith(reverse("sending:outbox_folder", args=["scheduled"]))
    page = rep_client.get(response["Location"]).content.decode()
    when = later.strftime("%b %-d, %Y, %H:%M")  # the one date-time format of the UI
    assert f"Scheduled the email to pat@prospect.test for {when}." in page


@pytest.mark.django_db
def test_a_browser_opening_the_api_address_is_told_what_to_send(client: Client) -> None:
    response = client.get(reverse("sending:api_messages"))
    assert response.status_code == 405 and response["Allow"] == "POST"
    error = response.json()["error"]
    assert "POST a JSON object here" in error and "Authorization: Bearer" in error
    assert f"http://testserver{reverse('sending:api_tokens')}" in error

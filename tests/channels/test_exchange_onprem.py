"""Exchange on-premises: the connection test against an HTTPS EWS endpoint on loopback."""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from channels import services
from channels.kinds import ExchangeOnPremConfig
from channels.models import Channel
from msc_admin.devtls import Certificates
from tests.mailservers import dripping_server, ews_server


def _channel(tenant: Tenant, user: User, url: str, password: str) -> Channel:
    config = ExchangeOnPremConfig(server_url=url, username="ACME\\rep", email="rep@acme.test")
    return services.channel_save_exchange_onprem(
        tenant=tenant, actor=user, owner=user, config=config, password=password
    )


def test_the_connection_test_reaches_ews_with_the_credentials(
    rep_client: Client, rep_user: User, acme: Tenant, certs: Certificates
) -> None:
    with ews_server(certs.trusted, username="ACME\\rep", password="pw") as server:
        channel = _channel(
            acme, rep_user, f"https://localhost:{server.port}/EWS/Exchange.asmx", "pw"
        )
        response = rep_client.post(
            reverse("channels:test", args=[channel.pk]), HTTP_HX_REQUEST="true"
        )
    assert "Exchange accepted the credentials." in response.content.decode()
    assert server.received.messages[0]["path"] == "/EWS/Exchange.asmx"
    assert b"GetFolder" in server.received.messages[0]["data"]
    channel.refresh_from_db()
    assert channel.last_test_ok is True


def test_wrong_credentials_need_attention(
    rep_client: Client, rep_user: User, acme: Tenant, certs: Certificates
) -> None:
    with ews_server(certs.trusted, username="ACME\\rep", password="pw") as server:
        channel = _channel(
            acme, rep_user, f"https://localhost:{server.port}/EWS/Exchange.asmx", "bad"
        )
        response = rep_client.post(
            reverse("channels:test", args=[channel.pk]), HTTP_HX_REQUEST="true"
        )
    assert "Authentication unsuccessful (HTTP 401)" in response.content.decode()
    channel.refresh_from_db()
    assert channel.status == "needs_attention"


def test_an_untrusted_certificate_is_refused_before_credentials_are_sent(
    rep_client: Client, rep_user: User, acme: Tenant, certs: Certificates
) -> None:
    with ews_server(certs.self_signed, username="ACME\\rep", password="pw") as server:
        channel = _channel(
            acme, rep_user, f"https://localhost:{server.port}/EWS/Exchange.asmx", "pw"
        )
        response = rep_client.post(
            reverse("channels:test", args=[channel.pk]), HTTP_HX_REQUEST="true"
        )
    assert "certificate not trusted" in response.content.decode()
    assert server.received.messages == []


@pytest.mark.django_db(transaction=True)
def test_an_ews_server_dripping_its_answer_is_cut_off_at_the_deadline(
    rep_client: Client, rep_user: User, acme: Tenant, certs: Certificates, settings
) -> None:
    settings.MSC_OUTBOUND_TIMEOUT = 1
    settings.MSC_OUTBOUND_DEADLINE = 2
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 5\r\n\r\n<ok/>"
    with dripping_server(answer, every=0.5, cert=certs.trusted, after=b"\r\n\r\n") as server:
        channel = _channel(
            acme, rep_user, f"https://localhost:{server.port}/EWS/Exchange.asmx", "pw"
        )
        started = time.monotonic()
        response = rep_client.post(
            reverse("channels:test", args=[channel.pk]), HTTP_HX_REQUEST="true"
        )
        took = time.monotonic() - started
    assert took < 3, took
    assert server.dripped >= 3  # answering all along: the deadline ended it, not a read timeout
    said = "Exchange did not finish the conversation within 2 s"
    assert said in response.content.decode()
    channel.refresh_from_db()
    assert channel.last_test_ok is False and channel.last_test_message == said

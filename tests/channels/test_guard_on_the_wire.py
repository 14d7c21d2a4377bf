"""The production guard (``MSC_OUTBOUND_ALLOW_PRIVATE`` off) in front of real loopback servers.

Only the test server's exact address and port is let through, by the test-only allow-list
``MSC_OUTBOUND_TEST_ALLOW``: the connection test and a send through the pipeline reach it, and
the same host on another port is refused where it is used, before any connection.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from channels import services as channel_services
from channels.kinds import Security, SmtpConfig
from channels.models import Channel, Identity
from msc_admin.devtls import Certificates
from sending import pipeline
from sending.models import Hold, Message, MessageStatus
from tests.mailservers import LOOPBACK, SmtpServer, smtp_server

pytestmark = pytest.mark.django_db(transaction=True)  # request paths, in autocommit

USER, PASSWORD = "relay-user", "relay-password"
REFUSED = f"{LOOPBACK} resolves to {LOOPBACK}, which is not a public internet address."


@pytest.fixture
def allowed(certs: Certificates, settings) -> Iterator[SmtpServer]:
    """A relay the guard lets through, and the production guard switched on."""
    with smtp_server(mode="starttls", cert=certs.trusted, users={USER: PASSWORD}) as server:
        settings.MSC_OUTBOUND_ALLOW_PRIVATE = False
        settings.MSC_OUTBOUND_TEST_ALLOW = frozenset({server.address})
        yield server


@pytest.fixture
def elsewhere(certs: Certificates) -> Iterator[SmtpServer]:
    """The same kind of relay on the same host, on a port nobody allowed."""
    with smtp_server(mode="starttls", cert=certs.trusted, users={USER: PASSWORD}) as server:
        yield server


def _team_channel(tenant: Tenant, admin: User, server: SmtpServer) -> Channel:
    # Saved by the service: its form would refuse the port that is not allowed.
    return channel_services.channel_save_smtp(
        tenant=tenant,
        actor=admin,
        owner=None,
        config=SmtpConfig(
            host=LOOPBACK,  # the test certificate names it; "localhost" may resolve to ::1 too
            port=server.port,
            security=Security.STARTTLS,
            auth_method="PLAIN",
            username=USER,
            sending_domain="acme.test",
        ),
        password=PASSWORD,
        use_for_all_members=True,
    )


def _test_connection(client: Client, channel: Channel) -> str:
    response = client.post(reverse("channels:test", args=[channel.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def _compose(client: Client, identity: Identity, to: str) -> Message:
    response = client.post(
        reverse("sending:compose"),
        {"identity": identity.pk, "to": to, "subject": "Hello", "body": "Hi there"},
    )
    assert response.status_code == 302, response.content.decode()[:500]
    return Message.objects.get(to_email=to)


def test_the_connection_test_reaches_the_allowed_server_with_the_guard_on(
    fresh_admin_client: Client, acme: Tenant, admin_user: User, allowed: SmtpServer
) -> None:
    channel = _team_channel(acme, admin_user, allowed)
    body = _test_connection(fresh_admin_client, channel)
    assert "Connection, TLS and authentication succeeded." in body
    assert allowed.received.auth_attempts == [("PLAIN", USER)]
    channel.refresh_from_db()
    assert channel.last_test_ok is True


def test_the_connection_test_refuses_the_same_host_on_another_port(
    fresh_admin_client: Client,
    acme: Tenant,
    admin_user: User,
    allowed: SmtpServer,
    elsewhere: SmtpServer,
) -> None:
    channel = _team_channel(acme, admin_user, elsewhere)
    body = _test_connection(fresh_admin_client, channel)
    assert REFUSED in body
    assert "Enter the public host name of your mail server." in body
    assert elsewhere.received.auth_attempts == [] and allowed.received.auth_attempts == []
    channel.refresh_from_db()
    assert channel.last_test_ok is False


def test_a_message_goes_out_through_the_allowed_relay_with_the_guard_on(
    rep_client: Client, acme: Tenant, admin_user: User, rep_user: User, allowed: SmtpServer
) -> None:
    _team_channel(acme, admin_user, allowed)
    identity = channel_services.identity_ensure_default(user=rep_user, tenant=acme)
    message = _compose(rep_client, identity, "pat@prospect.test")  # sent by its task, on commit
    assert message.status == MessageStatus.SENT, message.status_detail
    assert message.handed_over_at is not None and message.attempts == 1
    assert [m["to"] for m in allowed.received.messages] == [["pat@prospect.test"]]


def test_a_message_to_the_same_host_on_another_port_is_refused_at_send_time(
    rep_client: Client,
    acme: Tenant,
    admin_user: User,
    rep_user: User,
    allowed: SmtpServer,
    elsewhere: SmtpServer,
    settings,
) -> None:
    """Refused before any connection, each time it is tried; the rep reads the guard's words on
    the message, and once the attempts are used up it fails with them."""
    _team_channel(acme, admin_user, elsewhere)
    identity = channel_services.identity_ensure_default(user=rep_user, tenant=acme)
    message = _compose(rep_client, identity, "pat@prospect.test")
    # The pipeline treats it as a temporary problem (as any connection failure): queued again.
    assert message.status == MessageStatus.QUEUED and message.hold == Hold.RETRY
    assert message.attempts == 1 and message.handed_over_at is None
    assert message.detail_text.startswith(f"Temporary problem: {REFUSED}")
    queued = rep_client.get(reverse("sending:outbox_folder", args=["queued"])).content.decode()
    assert REFUSED in queued

    settings.MSC_SEND_MAX_ATTEMPTS = 2
    Message.objects.filter(pk=message.pk).update(next_attempt_at=message.created_at)
    assert pipeline.send_message(message.pk) == "failed"
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and not message.uncertain
    assert message.detail_text.startswith(f"Gave up after 2 attempts: {REFUSED}")
    failed = rep_client.get(reverse("sending:outbox_folder", args=["failed"])).content.decode()
    assert REFUSED in failed
    assert elsewhere.received.messages == [] and elsewhere.received.auth_attempts == []
    assert allowed.received.messages == []

"""A team SMTP channel on a real loopback relay, and a rep who sends through it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Tenant, User
from channels import services as channel_services
from channels.kinds import ChannelKind, Security, SmtpConfig
from channels.models import Channel, Identity, TeamSendingSettings
from msc_admin.devtls import Certificates
from sending.models import Contact, Message
from sending.services import Draft, message_create
from tests.mailservers import SmtpServer, smtp_server

RELAY_USER, RELAY_PASSWORD = "relay-user", "relay-password"


@pytest.fixture
def relay(certs: Certificates) -> Iterator[SmtpServer]:
    with smtp_server(
        mode="starttls", cert=certs.trusted, users={RELAY_USER: RELAY_PASSWORD}
    ) as server:
        yield server


def relay_config(server: SmtpServer, *, domain: str = "acme.test", **limits: int) -> SmtpConfig:
    return SmtpConfig(
        host=server.host,
        port=server.port,
        security=Security.STARTTLS,
        auth_method="PLAIN",
        username=RELAY_USER,
        sending_domain=domain,
        **limits,
    )


Scripted = Callable[..., tuple[SmtpServer, Identity]]


@pytest.fixture
def scripted(
    acme: Tenant, admin_user: User, rep_user: User, certs: Certificates
) -> Iterator[Scripted]:
    """A relay whose answers to DATA are scripted (then 250), as the team channel of Acme;
    ``per_minute=…`` and the like set the channel's sending limits."""
    with ExitStack() as stack:

        def start(replies: list[str], **limits: int) -> tuple[SmtpServer, Identity]:
            server = stack.enter_context(
                smtp_server(
                    mode="starttls",
                    cert=certs.trusted,
                    users={RELAY_USER: RELAY_PASSWORD},
                    replies=replies,
                )
            )
            channel_services.channel_save_smtp(
                tenant=acme,
                actor=admin_user,
                owner=None,
                config=relay_config(server, **limits),
                password=RELAY_PASSWORD,
                use_for_all_members=True,
            )
            return server, channel_services.identity_ensure_default(user=rep_user, tenant=acme)

        yield start


@pytest.fixture
def team_channel(acme: Tenant, admin_user: User, relay: SmtpServer) -> Channel:
    return channel_services.channel_save_smtp(
        tenant=acme,
        actor=admin_user,
        owner=None,
        config=relay_config(relay),
        password=RELAY_PASSWORD,
        use_for_all_members=True,
    )


@pytest.fixture
def rep_identity(acme: Tenant, rep_user: User, team_channel: Channel) -> Identity:
    return channel_services.identity_ensure_default(user=rep_user, tenant=acme)


@pytest.fixture
def contact(acme: Tenant, rep_user: User) -> Contact:
    return Contact.objects.create(
        tenant=acme, owner=rep_user, email="pat@prospect.test", first_name="Pat", company="Prospect"
    )


def queue_message(
    tenant: Tenant, user: User, identity: Identity | None, to: str = "pat@prospect.test", **kw
) -> Message:
    """Create a queued message without running its task (the test decides when it is sent)."""
    draft = Draft(
        to_email=to, subject=kw.pop("subject", "Hello"), body="Hi there", identity=identity, **kw
    )
    return message_create(tenant=tenant, sender=user, draft=draft)


def gmail_channel(
    tenant: Tenant, owner: User, *, token: str = "good-token", reading: str = "imap"
) -> Channel:
    """A connected Gmail mailbox. Read by IMAP unless ``reading="api"``: the inbox tests read
    it from a Dovecot on loopback, the Gmail API tests (tests/bounces/test_reading.py) from a
    fake at the HTTP boundary. (Connected through the app, a mailbox is read through the API.)"""
    channel = Channel.objects.create(
        tenant=tenant,
        owner=owner,
        kind=ChannelKind.GMAIL,
        account_email=owner.email,
        config={
            "provider": "google",
            "uid": "g-1",
            "scopes": "https://mail.google.com/",
            "reading": reading,
        },
        token_expires_at=timezone.now() + timedelta(hours=1),
    )
    channel.set_secret({"access_token": token, "refresh_token": "refresh"})
    channel.save()
    TeamSendingSettings.objects.get_or_create(tenant=tenant)
    return channel


def route_identity(tenant: Tenant, user: User, channel: Channel) -> Identity:
    """The user's default identity, sending through ``channel``."""
    identity = channel_services.identity_ensure_default(user=user, tenant=tenant)
    identity.channel = channel
    identity.save()
    return identity

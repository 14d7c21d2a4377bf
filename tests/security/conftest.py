"""One of every tenant object, all belonging to Acme, for the route walks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
import responses
from django.apps import apps
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from accounts.models import Membership, Tenant, User
from bounces import services as bounces
from bounces import webhooks
from bounces.models import BounceEvent, BounceSpike, EspWebhook
from channels import services as channel_services
from channels.kinds import Security, SmtpConfig
from channels.models import BlockedDomain, Channel, DomainCap, Identity
from msc_admin.devtls import Certificates
from sending import services as sending_services
from sending.models import (
    ApiToken,
    Campaign,
    CampaignStep,
    Contact,
    ContactImport,
    Message,
    Template,
)
from tests.bounces.conftest import dsn_for, mark_sent
from tests.channels.conftest import reauthenticate
from tests.mailservers import SmtpServer, smtp_server
from tests.sending.conftest import gmail_channel, queue_message

GMAIL_SEND_AS = "https://gmail.googleapis.com/gmail/v1/users/me/settings/sendAs"


@dataclass
class World:
    tenant: Tenant
    admin: User
    rep: User
    membership: Membership
    team_channel: Channel
    gmail: Channel
    identity: Identity
    blocked: BlockedDomain
    domain_cap: DomainCap
    queued: Message
    sent: Message
    template: Template
    campaign: Campaign
    step: CampaignStep
    contact_import: ContactImport
    api_token: ApiToken
    bounce: BounceEvent
    spike: BounceSpike
    webhook: EspWebhook


@pytest.fixture
def world(acme: Tenant, admin_user: User, rep_user: User, certs: Certificates) -> Iterator[World]:
    # The team channel's relay is a real one on a free loopback port: a form that tests or sends
    # through the channel reaches this test's own server, never whatever listens on a fixed port
    # (2525 is the demo relay's). One fixture, so modules that import ``world`` get it too.
    with (
        smtp_server(
            mode="starttls", cert=certs.trusted, users={"relay": "relay-password"}
        ) as relay,
        responses.RequestsMock(assert_all_requests_are_fired=False) as google,
    ):
        # Refreshing the Gmail mailbox's send-as addresses asks Google (faked here).
        google.get(GMAIL_SEND_AS, json={"sendAs": [{"sendAsEmail": rep_user.email}]})
        yield _world(acme, admin_user, rep_user, relay)


def _world(acme: Tenant, admin_user: User, rep_user: User, relay: SmtpServer) -> World:
    team = channel_services.channel_save_smtp(
        tenant=acme,
        actor=admin_user,
        owner=None,
        config=SmtpConfig(
            host="127.0.0.1",
            port=relay.port,
            security=Security.STARTTLS,
            auth_method="PLAIN",
            username="relay",
            sending_domain="acme.test",
        ),
        password="relay-password",
        use_for_all_members=True,
    )
    gmail = gmail_channel(acme, rep_user)
    identity = channel_services.identity_ensure_default(user=rep_user, tenant=acme)
    identity.channel = gmail
    identity.save()
    queued = queue_message(acme, rep_user, identity, to="queued@prospect.test")
    sent = mark_sent(queue_message(acme, rep_user, identity, to="gone@prospect.test"))
    bounces.ingest(tenant=acme, raw=dsn_for(sent))
    template = Template.objects.create(
        tenant=acme, owner=rep_user, name="Intro", subject="Hi", body="Hello"
    )
    campaign = Campaign.objects.create(tenant=acme, owner=rep_user, name="Q4", identity=identity)
    step = CampaignStep.objects.create(campaign=campaign, template=template, position=1)
    Contact.objects.create(tenant=acme, owner=rep_user, email="pat@prospect.test")
    job = ContactImport.objects.create(tenant=acme, user=rep_user, file_name="c.csv", data="")
    token, _ = sending_services.api_token_create(tenant=acme, user=rep_user, name="CRM")
    now = timezone.now()
    spike = BounceSpike.objects.create(
        tenant=acme,
        channel=team,
        detected_at=now,
        window_start=now - timedelta(hours=1),
        sent=20,
        bounced=5,
        threshold_pct=10,
    )
    hook, _ = webhooks.webhook_issue(tenant=acme, channel=team, provider="sendgrid")
    return World(
        tenant=acme,
        admin=admin_user,
        rep=rep_user,
        membership=rep_user.membership,
        team_channel=team,
        gmail=gmail,
        identity=identity,
        blocked=channel_services.blocked_domain_add(
            tenant=acme, actor=admin_user, domain="blocked.test"
        ),
        domain_cap=channel_services.domain_cap_add(
            tenant=acme, actor=admin_user, limit=200, period="hour", provider="google", domains=[]
        ),
        queued=queued,
        sent=sent,
        template=template,
        campaign=campaign,
        step=step,
        contact_import=job,
        api_token=token,
        bounce=BounceEvent.objects.get(message=sent),
        spike=spike,
        webhook=hook,
    )


def fresh_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    reauthenticate(client)
    return client


def database_state() -> dict[str, list[dict]]:
    """Every row of every table but the sessions, to prove a refused request wrote nothing."""
    return {
        model._meta.label: list(model.objects.order_by("pk").values())
        for model in apps.get_models()
        if model is not Session
    }

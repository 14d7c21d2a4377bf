"""The embedded demo's bounces: seeded history, and a bounce arriving from the demo relay."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import F
from django.test import Client, override_settings
from django.urls import reverse

from accounts.models import Tenant, User
from bounces import inbox
from bounces.demo import dead_address
from bounces.models import Attribution, BounceEvent
from channels.kinds import ChannelKind
from channels.models import Channel, Identity
from demo.management.commands.demo_smtp_server import start_relay
from sending import pipeline
from sending.models import Contact, Message, MessageStatus, Suppression
from tests.mailservers import free_port
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db


@override_settings(DEBUG=True)
def test_seed_demo_records_its_bounced_history_through_the_real_path() -> None:
    call_command("seed_demo")
    acme = Tenant.objects.get(slug="acme")
    bounced = Message.objects.for_tenant(acme).filter(status=MessageStatus.BOUNCED)
    events = BounceEvent.objects.for_tenant(acme)
    matched = events.filter(message__isnull=False)
    assert bounced.count() == matched.count() > 0
    assert set(matched.values_list("attributed_by", flat=True)) == {Attribution.MESSAGE_ID}
    assert events.filter(message__isnull=True).count() == 1  # one bounce of mail we never sent
    assert len(set(events.values_list("reason", flat=True))) >= 2
    assert all(bytes(e.raw).startswith(b"Return-Path: <>") for e in events)
    assert all(m.bounced_at and m.bounced_at < m.bounce_events.get().created_at for m in bounced)
    # Each address went on the suppression list when its bounce arrived, not when seeded.
    listed = Suppression.objects.filter(tenant=acme, bounced_at__isnull=False)
    assert listed.exists() and not listed.exclude(created_at=F("bounced_at")).exists()
    call_command("seed_demo")  # idempotent
    assert BounceEvent.objects.for_tenant(acme).count() == events.count()

    # The history does not contradict itself: an address bounces for one reason, and a domain
    # that does not exist does not exist for every address at it, in every tenant.
    by_address: dict[str, set[str]] = {}
    by_domain: dict[str, set[str]] = {}
    for recipient, reason in BounceEvent.objects.filter(message__isnull=False).values_list(
        "recipient", "reason"
    ):
        by_address.setdefault(recipient.lower(), set()).add(reason)
        by_domain.setdefault(recipient.partition("@")[2].lower(), set()).add(reason)
    assert len(by_address) >= 5 and all(len(r) == 1 for r in by_address.values()), by_address
    nowhere = {d: r for d, r in by_domain.items() if "hostunknown" in r}
    assert nowhere and all(r == {"hostunknown"} for r in nowhere.values()), nowhere

    client = Client()
    client.force_login(User.objects.get(email="admin@acme.test"))
    with override_settings(MSC_REQUIRE_MFA=False):
        page = client.get(reverse("bounces:list")).content.decode()
    assert "old.list@defunct.example" in page and "Mailbox does not exist" in page


def test_only_the_demo_dead_addresses_bounce() -> None:
    assert dead_address("former.ravi@soylent.example")[0] == "5.1.1"
    assert dead_address("full.mia@vandelay.example")[0] == "5.2.2"
    assert dead_address("ravi@soylent.example") is None
    assert dead_address("former.ravi@soylent.com") is None


def test_a_bounce_arrives_from_the_demo_relay_and_the_scanner_finds_it(
    acme: Tenant, rep_user: User, admin_user: User, tmp_path: Path, settings
) -> None:
    from channels import services as channel_services
    from channels.demo import DEMO_PASSWORD, _demo_smtp, _oauth

    settings.MSC_DEMO_MAILBOXES = str(tmp_path / "mailboxes")
    port = free_port()
    relay = start_relay(tmp_path / "relay", port)
    try:
        settings.MSC_EXTRA_CA_FILE = str(tmp_path / "relay" / "ca.pem")
        config = dataclasses.replace(_demo_smtp("acme.test"), port=port)
        channel_services.channel_save_smtp(
            tenant=acme,
            actor=admin_user,
            owner=None,
            config=config,
            password=DEMO_PASSWORD,
            use_for_all_members=True,
        )
        identity = channel_services.identity_ensure_default(user=rep_user, tenant=acme)
        Contact.objects.create(tenant=acme, owner=rep_user, email="former.kai@oscorp.example")
        dead = queue_message(acme, rep_user, identity, to="former.kai@oscorp.example")
        alive = queue_message(acme, rep_user, identity, to="kai@oscorp.example")
        assert pipeline.send_message(dead.pk) == "sent"
        assert pipeline.send_message(alive.pk) == "sent"

        # The demo Gmail mailbox (placeholder token) sends through the relay as well.
        _oauth(acme, rep_user, ChannelKind.GMAIL, "google")
        gmail = Channel.objects.get(owner=rep_user, kind=ChannelKind.GMAIL)
        settings.MSC_GMAIL_SMTP = f"localhost:{port}"
        Identity.objects.filter(pk=identity.pk).update(channel=gmail)
        identity.refresh_from_db()
        full = queue_message(acme, rep_user, identity, to="full.kai@oscorp.example")
        assert pipeline.send_message(full.pk) == "sent"
    finally:
        relay.stop()

    folder = tmp_path / "mailboxes" / "rep@acme.test"
    assert len(list(folder.glob("*.eml"))) == 2
    report = inbox.scan(gmail.pk)
    assert report.ok and (report.read, report.found) == (2, 2), report.problem
    dead.refresh_from_db()
    full.refresh_from_db()
    alive.refresh_from_db()
    assert dead.status == full.status == MessageStatus.BOUNCED
    assert alive.status == MessageStatus.SENT
    reasons = dict(BounceEvent.objects.values_list("recipient", "reason"))
    assert reasons == {
        "former.kai@oscorp.example": "userunknown",
        "full.kai@oscorp.example": "mailboxfull",
    }
    assert inbox.scan(gmail.pk).found == 0

"""Delivery channels and Team settings are read-only on GET: a member's default identity is made
when they sign in (and, for members who joined earlier, by a data migration), and the team's
sending settings are stored on their first save, their defaults shown until then."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Role, Tenant, User
from channels.models import Channel, ChannelAuditEvent, Identity, TeamSendingSettings
from tests.factories import PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)  # request paths: autocommit, as served


def _sign_in(email: str) -> Client:
    client = Client()
    response = client.post(reverse("account_login"), {"login": email, "password": PASSWORD})
    assert response.status_code == 302, response.content[:300]
    return client


def test_a_member_has_their_default_identity_from_their_first_sign_in(acme: Tenant) -> None:
    user = MembershipFactory(
        tenant=acme, user__email="pat@acme.test", user__first_name="Pat", user__last_name="Lee"
    ).user
    assert not Identity.objects.exists()
    client = _sign_in("pat@acme.test")
    identity = Identity.objects.get()
    assert (identity.user, identity.tenant, identity.email, identity.name) == (
        user,
        acme,
        "pat@acme.test",
        "Pat Lee",
    )
    assert identity.is_default and identity.is_verified
    page = client.get(reverse("channels:overview") + "?section=identities").content.decode()
    assert f'id="identity-{identity.pk}"' in page
    _sign_in("pat@acme.test")  # again: still the one
    assert Identity.objects.count() == 1


def test_staff_signing_in_get_no_identity(staff_user: User) -> None:
    client = Client()
    client.force_login(staff_user)
    assert not Identity.objects.exists()


def test_reading_delivery_channels_stores_no_identity(rep_client: Client, rep_user: User) -> None:
    Identity.objects.filter(user=rep_user).delete()  # a member without one (made before sign-in)
    response = rep_client.get(reverse("channels:overview"))
    assert response.status_code == 200
    assert not Identity.objects.filter(user=rep_user).exists()


def test_the_team_page_shows_the_defaults_until_the_first_save_which_stores_them(
    fresh_admin_client: Client, acme: Tenant
) -> None:
    assert not TeamSendingSettings.objects.exists()
    page = fresh_admin_client.get(reverse("channels:team")).content.decode()
    assert 'name="batch_size" value="25"' in page and 'name="wait_seconds" value="45"' in page
    assert 'name="spike_threshold_pct" value="10"' in page
    assert not TeamSendingSettings.objects.exists()

    data = {"throttling_enabled": "on", "batch_size": "30", "wait_seconds": "45"}
    response = fresh_admin_client.post(reverse("channels:throttling"), data)
    assert response.status_code == 302
    rules = TeamSendingSettings.objects.get(tenant=acme)
    assert (rules.batch_size, rules.wait_seconds, rules.spike_threshold_pct) == (30, 45, 10)
    # Only what changed from the defaults is audited, under the section's name.
    event = ChannelAuditEvent.objects.get(tenant=acme)
    assert event.subject == "Email Connection throttling"
    assert event.changes == {"batch_size": {"from": 25, "to": 30}}


def test_the_migration_gives_members_who_joined_earlier_their_default_identity(
    acme: Tenant, globex: Tenant
) -> None:
    migration = import_module("channels.migrations.0004_default_identities")
    joined = MembershipFactory(tenant=acme, user__email="joined@acme.test").user
    channel = Channel.objects.create(tenant=acme, owner=joined, kind="custom_smtp")
    has_one = MembershipFactory(tenant=globex, user__email="had@globex.test").user
    kept = Identity.objects.create(
        tenant=globex, user=has_one, email="sales@globex.test", name="Sales", is_default=True
    )
    typed = MembershipFactory(tenant=acme, user__email="typed@acme.test").user
    Identity.objects.create(tenant=acme, user=typed, email="typed@acme.test", name="Typed")
    invited = User.objects.create_user(email="invited@acme.test")
    Membership.objects.create(tenant=acme, user=invited, role=Role.REP, joined_at=None)
    UserFactory(email="staff@msc.test", is_staff=True)

    migration.make_default_identities(apps, None)

    made = Identity.objects.get(user=joined)
    assert (made.tenant, made.email, made.name, made.channel) == (
        acme,
        "joined@acme.test",
        "joined",
        channel,
    )
    assert made.is_default and made.verified_at is not None
    assert made.verified_at <= timezone.now()
    assert list(Identity.objects.filter(user=has_one)) == [kept]
    assert not Identity.objects.filter(user=typed, is_default=True).exists()
    assert not Identity.objects.filter(user__email__in=["invited@acme.test", "staff@msc.test"])
    migration.make_default_identities(apps, None)  # again: nothing more
    assert Identity.objects.count() == 3

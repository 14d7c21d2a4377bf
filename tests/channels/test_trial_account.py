"""A Gmail mailbox marked a Google Workspace trial account (500 messages in 24 hours): set by its
owner on their Gmail card or by an admin on Team settings, audited, kept when it reconnects."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role, Tenant, User
from channels import services as channel_services
from channels.kinds import ChannelKind
from channels.models import Channel, ChannelAuditEvent, TeamSendingSettings
from sending import quota
from tests.factories import MembershipFactory
from tests.sending.conftest import gmail_channel

pytestmark = pytest.mark.django_db(transaction=True)  # request paths, in autocommit


def _daily_limit(channel: Channel) -> int:
    channel.refresh_from_db()
    team = TeamSendingSettings.objects.get(tenant=channel.tenant)
    return {rule.name: rule.limit for rule in quota.rules_for(channel, team)}["day"]


def test_the_owner_marks_their_gmail_as_a_trial_account_and_back(
    rep_client: Client, acme: Tenant, rep_user: User
) -> None:
    channel = gmail_channel(acme, rep_user)
    card = rep_client.get(reverse("channels:overview")).content.decode()
    assert reverse("channels:trial_account", args=[channel.pk]) in card
    assert "Trial Google Workspace account (500 messages in 24 hours instead of 2,000)" in card

    response = rep_client.post(reverse("channels:trial_account", args=[channel.pk]), {"trial": "1"})
    assert response.status_code == 302 and response["Location"] == reverse("channels:overview")
    assert _daily_limit(channel) == 500
    event = ChannelAuditEvent.objects.get(channel=channel, action="updated")
    assert (event.actor, event.changes) == (rep_user, {"trial": {"from": False, "to": True}})
    page = rep_client.get(reverse("channels:overview")).content.decode()
    assert (
        "is a trial account. Gmail: 2 messages per second; "
        "Gmail trial limit: 500 messages in 24 hours"
    ) in page
    assert 'name="trial" value="1" checked' in page

    # Saving it again changes nothing and records nothing; unticking brings 2,000 back.
    rep_client.post(reverse("channels:trial_account", args=[channel.pk]), {"trial": "1"})
    assert ChannelAuditEvent.objects.filter(channel=channel).count() == 1
    rep_client.post(reverse("channels:trial_account", args=[channel.pk]), {})
    assert _daily_limit(channel) == 2000
    assert ChannelAuditEvent.objects.filter(channel=channel).count() == 2


def test_an_admin_marks_a_members_gmail_from_team_settings(
    admin_client: Client, acme: Tenant, admin_user: User, rep_user: User
) -> None:
    channel = gmail_channel(acme, rep_user)
    team = admin_client.get(reverse("channels:team")).content.decode()
    assert "rep@acme.test: trial Google Workspace account" in team
    url = reverse("channels:trial_account", args=[channel.pk])
    response = admin_client.post(url, {"trial": "1"})
    assert response.status_code == 302 and response["Location"] == reverse("channels:team")
    assert _daily_limit(channel) == 500
    event = ChannelAuditEvent.objects.get(channel=channel, action="updated")
    assert event.actor == admin_user
    assert "trial" in admin_client.get(reverse("channels:audit")).content.decode()


def test_another_member_cannot_see_or_set_it(acme: Tenant, rep_user: User) -> None:
    channel = gmail_channel(acme, rep_user)
    other = MembershipFactory(tenant=acme, role=Role.REP, user__email="other@acme.test").user
    client = Client()
    client.force_login(other)
    url = reverse("channels:trial_account", args=[channel.pk])
    assert client.post(url, {"trial": "1"}).status_code == 404
    assert client.get(url).status_code == 405
    assert _daily_limit(channel) == 2000
    assert not ChannelAuditEvent.objects.exists()


def test_a_mailbox_without_trial_accounts_has_no_such_flag(
    rep_client: Client, acme: Tenant, rep_user: User
) -> None:
    channel = gmail_channel(acme, rep_user)
    Channel.objects.filter(pk=channel.pk).update(kind=ChannelKind.EXCHANGE_ONLINE)
    url = reverse("channels:trial_account", args=[channel.pk])
    assert rep_client.post(url, {"trial": "1"}).status_code == 404
    channel.refresh_from_db()
    assert "trial" not in channel.config


def test_the_flag_survives_a_reconnect(rep_client: Client, acme: Tenant, rep_user: User) -> None:
    channel = gmail_channel(acme, rep_user)
    rep_client.post(reverse("channels:trial_account", args=[channel.pk]), {"trial": "1"})
    reconnected = channel_services.channel_connect_oauth(
        tenant=acme,
        owner=rep_user,
        kind=ChannelKind.GMAIL,
        provider="google",
        uid="g-1",
        email=rep_user.email,
        tokens={"access_token": "new-token"},
        expires_at=timezone.now() + timedelta(hours=1),
        scopes="https://mail.google.com/",
    )
    assert reconnected.pk == channel.pk
    assert reconnected.oauth.trial and _daily_limit(reconnected) == 500
    assert reconnected.read_secret()["refresh_token"] == "refresh"  # kept as before

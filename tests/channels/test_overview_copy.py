"""The Delivery channels page in human words, for each persona."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from channels.kinds import ChannelKind, SmtpConfig
from channels.models import Channel
from channels.services import channel_save_smtp

pytestmark = pytest.mark.django_db


def _section(page: str, element_id: str) -> str:
    found = re.search(rf'<section class="card" id="{element_id}">(.*?)</section>', page, re.S)
    assert found, element_id
    return found.group(1)


def _mailbox(tenant: Tenant, owner: User, kind: str) -> Channel:
    """A connected Gmail / Exchange Online mailbox, as a finished OAuth connect leaves it."""
    channel = Channel.objects.create(
        tenant=tenant, owner=owner, kind=kind, account_email=owner.email
    )
    channel.set_secret({"access_token": "token", "refresh_token": "refresh"})
    channel.token_expires_at = timezone.now() + timedelta(hours=1)
    channel.save()
    return channel


def test_the_navigation_and_the_page_use_one_name(rep_client: Client) -> None:
    page = rep_client.get(reverse("channels:overview")).content.decode()
    assert "<title>Delivery channels · msc-admin</title>" in page
    assert "<h1>Delivery channels</h1>" in page
    nav = re.search(r'<a href="/channels/" aria-current="page">([^<]*)</a>', page)
    assert nav and nav.group(1) == "Delivery channels"
    assert "email settings" not in page.lower()


def test_a_mailbox_that_cannot_be_renewed_is_not_called_active(
    admin_client: Client, acme: Tenant, admin_user: User, settings
) -> None:
    channel = _mailbox(acme, admin_user, ChannelKind.EXCHANGE_ONLINE)
    card = _section(admin_client.get(reverse("channels:overview")).content.decode(),
                    "connect-exchange-online")  # fmt: skip
    assert channel.status == "active"
    assert ">active<" not in card
    assert "cannot be renewed" in card and "Connected as" in card
    assert "stops sending when the current sign-in expires" in card
    assert "not configured" not in card and "MICROSOFT_CLIENT_ID" not in card

    providers = {**settings.SOCIALACCOUNT_PROVIDERS}
    providers["microsoft"] = {
        **providers["microsoft"],
        "APPS": [{"client_id": "app-id", "secret": "shh", "key": ""}],
    }
    settings.SOCIALACCOUNT_PROVIDERS = providers
    card = _section(admin_client.get(reverse("channels:overview")).content.decode(),
                    "connect-exchange-online")  # fmt: skip
    assert '<span class="badge ok">active</span>' in card
    assert "cannot be renewed" not in card


def test_the_team_channel_note_speaks_to_the_admin_who_set_it(
    admin_client: Client, rep_client: Client, acme: Tenant, admin_user: User, rep_user: User
) -> None:
    channel_save_smtp(
        tenant=acme,
        actor=admin_user,
        owner=None,
        config=SmtpConfig(host="localhost", port=2525, username="u", sending_domain="acme.test"),
        password="p",
        use_for_all_members=True,
    )
    team_section = reverse("channels:overview") + "?section=team"
    admin_page = admin_client.get(team_section).content.decode()
    assert "Set by your tenant admin" not in admin_page
    assert f'You manage it in <a href="{reverse("channels:team")}">Team settings</a>.' in admin_page
    rep_page = rep_client.get(team_section).content.decode()
    assert "Set by your tenant admin." in rep_page
    assert "You manage it" not in rep_page


@pytest.mark.parametrize("language", ["en", "pt-br", "es"])
def test_the_identities_help_names_the_merge_field_in_words_not_a_raw_variable(
    rep_client: Client, language: str
) -> None:
    url = f"{reverse('channels:overview')}?section=identities"
    page = rep_client.get(url, headers={"accept-language": language}).content.decode()
    assert 'id="add-identity"' in page
    assert "{{" not in page and "sender_name" not in page
    # A refused name comes back with the same help.
    response = rep_client.post(
        reverse("channels:identity_add"),
        {"email": "not-an-address", "name": "Rep"},
        headers={"accept-language": language},
    )
    assert "{{" not in response.content.decode()
    if language == "en":
        assert "the name templates sign it with (the “your name” merge field)" in page

"""Delivery channels in sections (My channel, Team channel, Identities, Limits): tabs that are
plain links (no script), the current one marked, each section's own content only, and every
change landing back on the section it was made in."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from channels.kinds import SmtpConfig
from channels.models import Identity
from channels.services import channel_save_smtp

# Request paths: served in autocommit, as Django serves them.
pytestmark = pytest.mark.django_db(transaction=True)

OVERVIEW = "/channels/"


def _tabs(page: str) -> list[tuple[str, str, bool]]:
    """(href, label, current) of each tab of the page's section navigation."""
    nav = re.search(r'<nav class="tabs"[^>]*>(.*?)</nav>', page, re.S)
    assert nav, "the page has no section tabs"
    return [
        (href, label, bool(current))
        for href, current, label in re.findall(
            r'<a href="([^"]*)"( aria-current="page")?>([^<]*)</a>', nav.group(1)
        )
    ]


def _team_channel(tenant: Tenant, admin: User) -> None:
    channel_save_smtp(
        tenant=tenant,
        actor=admin,
        owner=None,
        config=SmtpConfig(host="localhost", port=2525, username="u", sending_domain="acme.test"),
        password="p",
        use_for_all_members=True,
    )


def test_each_section_is_a_link_and_the_current_one_is_marked(admin_client: Client) -> None:
    expected = [
        (OVERVIEW, "My channel"),
        (f"{OVERVIEW}?section=team", "Team channel"),
        (f"{OVERVIEW}?section=identities", "Identities"),
        (f"{OVERVIEW}?section=limits", "Limits"),
    ]
    for href, label in expected:
        response = admin_client.get(href)
        assert response.status_code == 200
        tabs = _tabs(response.content.decode())
        assert [(h, text) for h, text, _ in tabs] == expected
        assert [text for _, text, current in tabs if current] == [label]


def test_each_section_shows_its_own_content_only(admin_client: Client) -> None:
    mine = admin_client.get(OVERVIEW).content.decode()
    identities = admin_client.get(f"{OVERVIEW}?section=identities").content.decode()
    limits = admin_client.get(f"{OVERVIEW}?section=limits").content.decode()

    assert 'id="connect-gmail"' in mine and 'id="add-identity"' not in mine
    assert 'id="add-identity"' in identities and "Which channel sends what" in identities
    assert 'id="connect-gmail"' not in identities and 'id="connect-gmail"' not in limits
    assert "Provider limits, always enforced" in limits and "Sending limits" in limits
    assert 'id="add-identity"' not in limits


def test_the_catalogue_of_kinds_is_folded_away_on_my_channel(admin_client: Client) -> None:
    page = admin_client.get(OVERVIEW).content.decode()
    folded = re.search(r'<details class="catalogue"[^>]*>(.*?)</details>', page, re.S)
    assert folded, "the catalogue is not in a <details>"
    assert " open" not in page[folded.start() : folded.start() + 40]
    assert "What each channel supports" in folded.group(1)
    assert 'id="kind-gmail"' in folded.group(1)


def test_an_unknown_section_shows_my_channel(rep_client: Client) -> None:
    response = rep_client.get(f"{OVERVIEW}?section=nonsense")
    assert response.status_code == 200
    tabs = _tabs(response.content.decode())
    assert [text for _, text, current in tabs if current] == ["My channel"]


def test_a_rep_sees_the_team_tab_only_when_the_team_has_a_channel(
    rep_client: Client, acme: Tenant, admin_user: User
) -> None:
    page = rep_client.get(OVERVIEW).content.decode()
    assert "Team channel" not in [text for _, text, _ in _tabs(page)]
    # Asked for anyway: the first section, nothing of the admin's.
    asked = rep_client.get(f"{OVERVIEW}?section=team").content.decode()
    assert [text for _, text, current in _tabs(asked) if current] == ["My channel"]
    assert "Set up a team SMTP channel" not in asked

    _team_channel(acme, admin_user)
    page = rep_client.get(f"{OVERVIEW}?section=team").content.decode()
    assert [text for _, text, current in _tabs(page) if current] == ["Team channel"]
    assert "Set by your tenant admin." in page
    assert reverse("channels:team") not in page  # the admin's page is not offered


def test_an_admin_without_a_team_channel_is_told_what_to_do_next(admin_client: Client) -> None:
    page = admin_client.get(f"{OVERVIEW}?section=team").content.decode()
    empty = re.search(r'<div class="empty">(.*?)</div>', page, re.S)
    assert empty and "No team channel." in empty.group(1)
    assert f'href="{reverse("channels:team_smtp_edit")}"' in empty.group(1)


def test_an_identity_change_lands_back_on_identities(rep_client: Client, rep_user: User) -> None:
    identity = Identity.objects.get(user=rep_user)
    response = rep_client.post(
        reverse("channels:identity_name", args=[identity.pk]), {"name": "Rick from Sales"}
    )
    assert response.status_code == 302
    assert response["Location"] == f"{OVERVIEW}?section=identities"
    identity.refresh_from_db()
    assert identity.name == "Rick from Sales"
    landed = rep_client.get(response["Location"]).content.decode()
    assert "Rick from Sales" in landed


def test_a_refused_identity_is_shown_in_the_identities_section(
    rep_client: Client, rep_user: User
) -> None:
    before = Identity.objects.count()
    response = rep_client.post(
        reverse("channels:identity_add"), {"email": "not-an-address", "name": "Rick"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert [text for _, text, current in _tabs(page) if current] == ["Identities"]
    assert 'value="not-an-address"' in page
    assert Identity.objects.count() == before

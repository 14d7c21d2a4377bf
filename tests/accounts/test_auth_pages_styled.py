"""allauth's pages in the product's components: panels are cards, their actions buttons in the
product's styles (secondary, danger), badges coloured by what they say."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_factor_panels_are_cards_with_their_actions_as_buttons(rep_client: Client) -> None:
    page = rep_client.get(reverse("mfa_index")).content.decode()
    panels = re.findall(r'<section class="card panel">(.*?)</section>', page, re.S)
    assert panels, "no panel is a card"
    activate = reverse("mfa_activate_totp")
    assert re.search(rf'<div class="actions">\s*<a class="button" href="{activate}"', page)
    assert "<li>" not in "".join(panels)  # actions are a row of buttons, not a list


def test_email_addresses_show_badges_and_styled_buttons(rep_client: Client) -> None:
    page = rep_client.get(reverse("account_email")).content.decode()
    assert re.search(r'<span class="badge ok">\s*Verified\s*</span>', page) or re.search(
        r'<span class="badge warn">\s*Unverified\s*</span>', page
    )
    assert re.search(r'<button class="secondary" name="action_send"', page)
    assert re.search(r'<button class="danger" [^>]*name="action_remove"', page)


def test_sign_up_closed_offers_the_way_back(client: Client) -> None:
    page = client.get(reverse("account_signup")).content.decode()
    assert "Sign-up is closed" in page
    assert f'<a class="button" href="{reverse("account_login")}">Back to sign in</a>' in page

"""The custom SMTP form's optional sending limits: validated (positive whole numbers or empty),
saved, audited, shown on the card; the support matrix says custom SMTP is throttled only by them."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from channels.kinds import ChannelKind, kind_of
from channels.models import Channel, ChannelAuditEvent
from tests.channels.test_channel_pages import SMTP_POST

pytestmark = pytest.mark.django_db

NO_LIMITS = {"per_minute": "", "per_hour": "", "per_day": ""}
WHOLE = "Enter a whole number (like 1000 or 1,000), or leave it empty for no limit."


def test_an_admin_sets_the_team_channels_limits_and_they_are_audited_and_shown(
    fresh_admin_client: Client, acme: Tenant, admin_user: User
) -> None:
    url = reverse("channels:team_smtp_edit")
    form = fresh_admin_client.get(url).content.decode()
    assert 'name="per_minute"' in form and 'name="per_day"' in form
    response = fresh_admin_client.post(
        url, {**SMTP_POST, "per_minute": "100", "per_hour": "", "per_day": "10000"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = Channel.objects.get(tenant=acme, owner__isnull=True)
    assert (channel.smtp.per_minute, channel.smtp.per_hour, channel.smtp.per_day) == (
        100,
        None,
        10_000,
    )
    event = ChannelAuditEvent.objects.get(channel=channel, action="created")
    assert event.changes["per_minute"] == {"from": None, "to": 100}
    assert event.changes["per_day"] == {"from": None, "to": 10_000}
    page = fresh_admin_client.get(reverse("channels:team")).content.decode()
    assert "<span>100 per minute</span>" in page and "<span>10,000 in 24 hours</span>" in page


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("0", "Enter a number of 1 or more, or leave it empty for no limit."),
        ("-5", "Enter a number of 1 or more, or leave it empty for no limit."),
        ("ten", WHOLE),
        ("2.5", WHOLE),
        ("1.000", WHOLE),  # a thousand in some countries, one in others: not guessed
        ("1,5", WHOLE),  # a decimal comma, not 15
        ("1,00,000", WHOLE),
        ("99999999", "Enter at most 10,000,000, or leave it empty for no limit."),
    ],
)
def test_a_limit_must_be_a_positive_whole_number_or_empty(
    fresh_rep_client: Client, typed: str, message: str
) -> None:
    response = fresh_rep_client.post(
        reverse("channels:smtp_edit"), {**SMTP_POST, **NO_LIMITS, "per_hour": typed}
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    assert not Channel.objects.exists()
    # Nothing typed is lost (but the password): the server and the bad value are still there.
    assert 'value="localhost"' in body and f'value="{typed}"' in body


def test_a_limit_may_be_typed_with_thousands_separators(
    fresh_rep_client: Client, rep_user: User
) -> None:
    typed = {"per_minute": " 1,000 ", "per_hour": "10 000", "per_day": "1\u202f000\u202f000"}
    response = fresh_rep_client.post(reverse("channels:smtp_edit"), {**SMTP_POST, **typed})
    assert response.status_code == 302, response.content.decode()[:2000]
    smtp = Channel.objects.get(owner=rep_user).smtp
    assert (smtp.per_minute, smtp.per_hour, smtp.per_day) == (1_000, 10_000, 1_000_000)


@pytest.mark.parametrize(
    ("limits", "field", "message"),
    [
        (
            {"per_minute": "500", "per_hour": "200"},
            "per_minute",
            "More than the limit per hour (200): a minute cannot send more than that.",
        ),
        (
            {"per_hour": "5,000", "per_day": "1,000"},
            "per_hour",
            "More than the limit per 24 hours (1,000): an hour cannot send more than that.",
        ),
        (
            {"per_minute": "2000", "per_day": "1000"},
            "per_minute",
            "More than the limit per 24 hours (1,000): a minute cannot send more than that.",
        ),
    ],
)
def test_a_shorter_windows_limit_cannot_be_more_than_a_longer_ones(
    fresh_rep_client: Client, limits: dict[str, str], field: str, message: str
) -> None:
    response = fresh_rep_client.post(
        reverse("channels:smtp_edit"), {**SMTP_POST, **NO_LIMITS, **limits}
    )
    assert response.status_code == 400
    body = response.content.decode()
    # The error sits with the field it is about, and what was typed stays.
    around = body.split(f'name="{field}"')[0].rsplit("<div", 1)[1]
    assert message in around
    assert not Channel.objects.exists()
    assert all(f'value="{value}"' in body for value in limits.values())


def test_equal_limits_are_accepted(fresh_rep_client: Client, rep_user: User) -> None:
    limits = {"per_minute": "100", "per_hour": "100", "per_day": "100"}
    response = fresh_rep_client.post(reverse("channels:smtp_edit"), {**SMTP_POST, **limits})
    assert response.status_code == 302
    assert Channel.objects.get(owner=rep_user).smtp.per_hour == 100


def test_changing_only_the_limits_keeps_the_connection_test_result(
    fresh_rep_client: Client, rep_user: User
) -> None:
    url = reverse("channels:smtp_edit")
    fresh_rep_client.post(url, {**SMTP_POST, **NO_LIMITS})
    channel = Channel.objects.get(owner=rep_user)
    Channel.objects.filter(pk=channel.pk).update(last_test_ok=True, last_test_message="passed")
    unchanged = {**SMTP_POST, "password": ""}  # blank keeps the stored password
    response = fresh_rep_client.post(url, {**unchanged, **NO_LIMITS, "per_day": "500"})
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.smtp.per_day == 500 and channel.last_test_ok is True
    event = ChannelAuditEvent.objects.filter(channel=channel, action="updated").get()
    assert event.changes["per_day"] == {"from": None, "to": 500}
    # Clearing a limit removes it.
    fresh_rep_client.post(url, {**unchanged, **NO_LIMITS})
    channel.refresh_from_db()
    assert channel.smtp.per_day is None
    page = fresh_rep_client.get(reverse("channels:overview")).content.decode()
    assert "none set: msc-admin does not throttle it" in page


def test_the_support_matrix_says_custom_smtp_is_throttled_only_by_its_limits() -> None:
    card = kind_of(ChannelKind.CUSTOM_SMTP).card
    assert card.throttling.startswith("Only by the limits you set (per minute, hour or day)")
    assert "never" not in card.throttling.lower()

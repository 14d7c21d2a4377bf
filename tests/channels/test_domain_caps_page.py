"""Team settings: limits by receiving domain, added and removed by admins, audited, with clear
errors that keep what was typed. Requests in autocommit, as Django serves them."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from channels import providers
from channels.models import ChannelAuditEvent, DomainCap
from msc_admin.stored import read

pytestmark = pytest.mark.django_db(transaction=True)

ADD = reverse("channels:domain_cap_add")


def test_an_admin_adds_a_provider_cap_and_a_domain_cap_and_both_are_audited(
    admin_client: Client, acme: Tenant, admin_user: User
) -> None:
    assert admin_client.get(ADD).status_code == 405
    response = admin_client.post(ADD, {"limit": "200", "period": "hour", "to": "google"})
    assert response.status_code == 302 and response["Location"] == reverse("channels:team")
    response = admin_client.post(
        ADD, {"limit": "50", "period": "day", "to": "Example.ORG,  @partner.test; example.org"}
    )
    assert response.status_code == 302
    caps = list(DomainCap.objects.filter(tenant=acme).order_by("pk"))
    assert [(c.limit, c.period, c.provider, c.domains) for c in caps] == [
        (200, "hour", providers.GOOGLE, []),
        (50, "day", "", ["example.org", "partner.test"]),
    ]
    assert [c.label for c in caps] == [
        "At most 200 an hour to Google mailboxes",
        "At most 50 a day to example.org, partner.test",
    ]
    page = admin_client.get(reverse("channels:team")).content.decode()
    assert "At most 200 an hour to Google mailboxes" in page
    assert "At most 50 a day to example.org, partner.test" in page
    audit = ChannelAuditEvent.objects.filter(tenant=acme, action="receiving-domain limit added")
    assert audit.count() == 2 and {a.actor_id for a in audit} == {admin_user.pk}

    admin_client.post(reverse("channels:domain_cap_remove", args=[caps[0].pk]))
    assert list(DomainCap.objects.filter(tenant=acme)) == [caps[1]]
    removed = ChannelAuditEvent.objects.get(tenant=acme, action="receiving-domain limit removed")
    assert (
        read(removed.subject) == "receiving-domain limit: At most 200 an hour to Google mailboxes"
    )


@pytest.mark.parametrize(
    ("posted", "error"),
    [
        ({"limit": "200", "period": "hour", "to": "Gmial"}, "“Gmial” is not a provider we know"),
        ({"limit": "0", "period": "hour", "to": "google"}, "Enter 1 or more"),
        ({"limit": "-5", "period": "hour", "to": "google"}, "Enter 1 or more"),
        ({"limit": "lots", "period": "hour", "to": "google"}, "Enter a whole number"),
        ({"limit": "10", "period": "week", "to": "google"}, "Select a valid choice"),
        (
            {"limit": "10", "period": "day", "to": "gmail.com, exa_mple..com"},
            "“exa_mple..com” (in “gmail.com, exa_mple..com”) is not a domain",
        ),
        ({"limit": "10", "period": "day", "to": " "}, "This field is required"),
    ],
)
def test_bad_values_are_refused_with_a_clear_error_and_what_was_typed_is_kept(
    admin_client: Client, acme: Tenant, posted: dict[str, str], error: str
) -> None:
    response = admin_client.post(ADD, posted)
    assert response.status_code == 400
    page = response.content.decode()
    assert error in page
    if posted["to"].strip():
        assert f'value="{posted["to"]}"' in page
    assert not DomainCap.objects.exists()
    assert not ChannelAuditEvent.objects.filter(action="receiving-domain limit added").exists()


def test_a_rep_may_neither_add_nor_remove_a_cap(
    rep_client: Client, acme: Tenant, admin_user: User
) -> None:
    cap = DomainCap.objects.create(tenant=acme, limit=5, period="hour", provider="google")
    assert rep_client.post(ADD, {"limit": "1", "period": "hour", "to": "yahoo"}).status_code == 403
    remove = reverse("channels:domain_cap_remove", args=[cap.pk])
    assert rep_client.post(remove).status_code == 403
    assert list(DomainCap.objects.all()) == [cap]
    assert Client().post(remove).status_code == 302  # anonymous: to the sign-in page
    assert list(DomainCap.objects.all()) == [cap]


def test_the_same_cap_twice_is_refused_beside_the_field(acme: Tenant, admin_client: Client) -> None:
    url = reverse("channels:domain_cap_add")
    assert (
        admin_client.post(url, {"limit": "5", "period": "hour", "to": "Google"}).status_code == 302
    )
    again = admin_client.post(url, {"limit": "9", "period": "hour", "to": "google"})
    assert again.status_code == 400
    assert "There is already a cap on this: At most 5 an hour to Google mailboxes" in (
        again.content.decode()
    )
    assert DomainCap.objects.filter(tenant=acme).count() == 1
    # Per day is another cap, and so is another list of domains.
    for to, period in (("google", "day"), ("gmail.com, example.com", "hour")):
        added = admin_client.post(url, {"limit": "5", "period": period, "to": to})
        assert added.status_code == 302
    assert DomainCap.objects.filter(tenant=acme).count() == 3

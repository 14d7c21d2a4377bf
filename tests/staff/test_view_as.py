"""Staff "view as tenant": every form that would change something is shown disabled with the
reason, every refused attempt (plain or htmx) changes nothing, answers so the page can show it,
and is written to the staff audit log; stopping the view and signing out keep working."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.middleware import VIEW_AS
from accounts.models import User
from channels.models import Identity
from staff.models import StaffAuditEvent
from tests.factories import PASSWORD
from tests.security.conftest import World, database_state
from tests.security.conftest import world as world  # the fixture

REASON = "You are viewing Acme read-only: nothing can be changed."
FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S)


def _forms(html: str) -> list[tuple[str, str]]:
    return FORM.findall(html)


@pytest.fixture
def viewing(staff_client: Client, world: World) -> Client:
    staff_client.post(reverse("staff:view_as", args=[world.tenant.pk]))
    return staff_client


def test_forms_that_change_something_are_disabled_with_the_reason(
    viewing: Client, world: World, staff_user: User
) -> None:
    pages = [
        reverse("channels:overview") + "?section=identities",  # its forms: the identities'
        reverse("channels:team"),
        reverse("sending:outbox") + "?scope=team",
        reverse("accounts:users"),
        reverse("sending:compose"),
    ]
    for url in pages:
        response = viewing.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        posts = [(a, b) for a, b in _forms(html) if 'method="post"' in a]
        locked = [
            (attrs, body)
            for attrs, body in posts
            if body.startswith(f'<fieldset class="view-as-locked" disabled title="{REASON}"')
        ]
        allowed = [a for a, _ in posts if "/staff/view-as/stop/" in a or "/accounts/logout/" in a]
        assert len(allowed) == 2, url  # stopping the view and signing out stay usable
        assert len(locked) == len(posts) - 2 >= 1, (url, [a for a, _ in posts])
        for attrs, body in locked:  # larger forms say why in words, not only on hover
            if "inline-form" not in attrs:
                assert f'<p class="view-as-note">{REASON}</p>' in body, url
        for attrs, body in _forms(html):
            if 'method="get"' in attrs:  # filters stay usable
                assert "view-as-locked" not in body, url
    # The in-place buttons are among them (Test connection, Send test email, user actions).
    team = viewing.get(reverse("channels:team")).content.decode()
    for name in ("channels:test", "channels:test_email"):
        url = reverse(name, args=[world.team_channel.pk])
        (form,) = [b for a, b in _forms(team) if f'action="{url}"' in a]
        assert form.startswith('<fieldset class="view-as-locked" disabled'), name
    # Looking at My email settings does not give staff an identity in the tenant.
    assert not Identity.objects.filter(user=staff_user).exists()


@pytest.mark.django_db(transaction=True)
def test_refused_attempts_change_nothing_say_why_and_are_audited(
    viewing: Client, world: World, staff_user: User
) -> None:
    users = reverse("accounts:users")
    plain = [
        (reverse("channels:throttling"), {"batch_size": "5", "wait_seconds": "10"}),
        (users, {"email": "new@acme.test", "role": "rep"}),
        (reverse("sending:delete", args=[world.queued.pk]), {}),
    ]
    htmx = [
        (reverse("channels:test", args=[world.team_channel.pk]), {}),
        (reverse("bounces:scan", args=[world.gmail.pk]), {}),
        (reverse("accounts:membership_active", args=[world.membership.pk]), {"active": "0"}),
    ]
    StaffAuditEvent.objects.all().delete()  # the start of the view
    before = database_state()
    for url, data in plain:
        response = viewing.post(url, data, HTTP_REFERER=f"http://testserver{users}")
        assert (response.status_code, response["Location"]) == (302, users), url
        shown = viewing.get(response["Location"]).content.decode()
        assert REASON in shown, url  # the flash message on the page it came from
    for url, data in htmx:
        response = viewing.post(url, data, HTTP_HX_REQUEST="true")
        assert response.status_code == 403, url
        assert response["HX-Reswap"] == "none"
        trigger = json.loads(response["HX-Trigger"])
        assert trigger == {"view-as-refused": {"message": REASON}}, url
    after = database_state()
    events = after.pop("staff.StaffAuditEvent")
    before.pop("staff.StaffAuditEvent")
    assert after == before  # nothing changed but the audit log
    assert [(e["actor_id"], e["tenant_id"], e["action"]) for e in events] == [
        (staff_user.pk, world.tenant.pk, "refused while viewing as tenant")
    ] * 6
    assert [(e["details"]["url"], e["details"]["htmx"]) for e in events] == [
        *[(url, False) for url, _ in plain],
        *[(url, True) for url, _ in htmx],
    ]
    assert events[0]["details"]["view"] == "channels:throttling"
    assert events[0]["subject"] == f"POST {plain[0][0]}"


def test_a_refused_post_from_elsewhere_goes_home_not_to_another_site(viewing: Client) -> None:
    response = viewing.post(
        reverse("channels:throttling"), {}, HTTP_REFERER="https://evil.example/phish"
    )
    assert response["Location"] == reverse("home")


def test_staff_can_confirm_their_password_and_stop_viewing_after_a_while(
    staff_user: User, world: World
) -> None:
    client = Client()
    client.force_login(staff_user)  # signed in long ago: no recent password confirmation
    session = client.session
    session[VIEW_AS] = world.tenant.pk
    session.save()
    stop = reverse("staff:view_as_stop")
    response = client.post(stop)
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    confirmed = client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    assert confirmed.status_code == 302  # not refused as a change to the tenant
    response = client.post(stop)
    assert response["Location"] == reverse("staff:tenant", args=[world.tenant.pk])
    assert VIEW_AS not in client.session

"""Every object-scoped route answers 404 to another tenant's admin and writes nothing.

The walk is over the URLconf: a new route that takes an object's id fails
``test_every_object_route_has_a_cross_tenant_case`` until it is added to ``CASES`` (or to
``NOT_TENANT_OBJECTS`` with the reason it needs no case).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User
from tests.routes import all_routes
from tests.security.conftest import World, database_state, fresh_client

# route name -> the Acme object's URL arguments, and what a form would post.
CASES: dict[str, tuple[Callable[[World], dict[str, Any]], dict[str, str]]] = {
    "accounts:membership_role": (lambda w: {"pk": w.membership.pk}, {"role": "admin"}),
    "accounts:membership_active": (lambda w: {"pk": w.membership.pk}, {"active": "0"}),
    "accounts:membership_resend": (lambda w: {"pk": w.membership.pk}, {}),
    "channels:remove": (lambda w: {"pk": w.team_channel.pk}, {}),
    "channels:test": (lambda w: {"pk": w.team_channel.pk}, {}),
    "channels:test_email": (lambda w: {"pk": w.team_channel.pk}, {"to": "a@b.test"}),
    "channels:trial_account": (lambda w: {"pk": w.gmail.pk}, {"trial": "1"}),
    "channels:send_as_refresh": (lambda w: {"pk": w.gmail.pk}, {}),
    "channels:domain_check": (lambda w: {"pk": w.team_channel.pk}, {"domain": "acme.test"}),
    "channels:identity_resend": (lambda w: {"pk": w.identity.pk}, {}),
    "channels:identity_channel": (
        lambda w: {"pk": w.identity.pk},
        {"channel": ""},
    ),
    "channels:identity_name": (lambda w: {"pk": w.identity.pk}, {"name": "Stolen"}),
    "channels:blocked_remove": (lambda w: {"pk": w.blocked.pk}, {}),
    "channels:domain_cap_remove": (lambda w: {"pk": w.domain_cap.pk}, {}),
    "sending:retry": (lambda w: {"pk": w.queued.pk}, {}),
    "sending:delete": (lambda w: {"pk": w.queued.pk}, {}),
    "sending:template_edit": (
        lambda w: {"pk": w.template.pk},
        {"name": "Stolen", "subject": "x", "body": "x"},
    ),
    "sending:template_delete": (lambda w: {"pk": w.template.pk}, {}),
    "sending:contact_import_status": (lambda w: {"pk": w.contact_import.pk}, {}),
    "sending:campaign": (lambda w: {"pk": w.campaign.pk}, {"name": "Stolen"}),
    "sending:step_add": (
        lambda w: {"pk": w.campaign.pk},
        {"template": "", "delay_days": "1"},
    ),
    "sending:step_remove": (lambda w: {"pk": w.campaign.pk, "step": w.step.pk}, {}),
    "sending:enroll": (lambda w: {"pk": w.campaign.pk}, {"contacts": ""}),
    "sending:campaign_action": (lambda w: {"pk": w.campaign.pk, "action": "start"}, {}),
    "sending:api_token_revoke": (lambda w: {"pk": w.api_token.pk}, {}),
    "bounces:detail": (lambda w: {"pk": w.bounce.pk}, {}),
    "bounces:undo": (lambda w: {"pk": w.bounce.pk}, {}),
    "bounces:recheck": (lambda w: {"pk": w.bounce.pk}, {}),
    "bounces:spike": (lambda w: {"pk": w.spike.pk}, {}),
    "bounces:spike_resolve": (lambda w: {"pk": w.spike.pk}, {"undo": "1"}),
    "bounces:scan": (lambda w: {"pk": w.gmail.pk}, {}),
    "bounces:scan_status": (lambda w: {"pk": w.gmail.pk}, {}),
    "bounces:reading": (lambda w: {"pk": w.gmail.pk}, {"reading": "imap"}),
    "bounces:webhook_issue": (lambda w: {"pk": w.team_channel.pk}, {"provider": "sendgrid"}),
    "analytics:template_bounces": (lambda w: {"key": w.template.pk}, {}),
    "analytics:template_bounces_csv": (lambda w: {"key": w.template.pk}, {}),
}

# Routes whose arguments are not a tenant's object ids, and why no cross-tenant case applies.
NOT_TENANT_OBJECTS = {
    "accounts:invite_accept": "a signed, single-use invitation token (tests/accounts)",
    "channels:identity_verify": "a signed verification token (tests/channels)",
    "sending:outbox_folder": "a folder name from a fixed list; the rows are the user's own",
    "bounces:webhook_sendgrid": "an unguessable key plus HTTP Basic secret (tests/bounces)",
    "bounces:webhook_sparkpost": "an unguessable key plus HTTP Basic secret (tests/bounces)",
    "staff:tenant": "staff only: every other user gets 404 from the staff gate (tests/staff)",
    "staff:tenant_progress": "staff only (tests/staff)",
    "staff:tenant_legacy": "staff only (tests/staff)",
    "staff:view_as": "staff only (tests/staff)",
    "staff:server_edit": "staff only; MSC servers belong to the platform, not a tenant",
    "staff:server_enabled": "staff only; MSC servers belong to the platform, not a tenant",
    "staff:server_check": "staff only; MSC servers belong to the platform, not a tenant",
}


def test_every_object_route_has_a_cross_tenant_case() -> None:
    with_args = {r.name for r in all_routes() if r.params}
    missing = with_args - set(CASES) - set(NOT_TENANT_OBJECTS)
    assert not missing, f"object-scoped routes without a cross-tenant case: {sorted(missing)}"
    stale = (set(CASES) | set(NOT_TENANT_OBJECTS)) - with_args
    assert not stale, f"cases for routes that no longer exist: {sorted(stale)}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_another_tenants_admin_gets_404_and_changes_nothing(
    world: World, outsider_user: User, name: str
) -> None:
    kwargs_of, data = CASES[name]
    url = reverse(name, kwargs=kwargs_of(world))
    outsider = fresh_client(outsider_user)
    before = database_state()
    answers = [
        outsider.get(url).status_code,
        outsider.post(url, data).status_code,
        outsider.post(url, data, HTTP_HX_REQUEST="true").status_code,
    ]
    # 405 where the route does not take that method; every method it takes is a 404.
    assert set(answers) <= {404, 405} and 404 in answers, (url, answers)
    assert database_state() == before, url

    # The same URL is real: someone in Acme reaches the object (so the 404 above was the
    # tenant check, not a wrong id).
    insiders = [fresh_client(world.admin), fresh_client(world.rep)]
    reached = []
    for client in insiders:
        response = client.get(url)
        if response.status_code == 405:
            response = client.post(url, data)
        reached.append(response.status_code)
    assert any(code not in (404, 405) for code in reached), (url, reached)


def _outsider_sees_nothing_of_acme_in(client: Client, world: World) -> None:
    for name in ("sending:outbox", "bounces:list", "analytics:overview", "analytics:live_feed"):
        response = client.get(reverse(name))
        # Their own list, shown: an error page would show nothing of Acme's either.
        assert response.status_code == 200, (name, response.status_code)
        body = response.content.decode()
        assert "<h1" in body and "Globex" in body, name
        assert "gone@prospect.test" not in body and "Intro" not in body, name


def test_lists_show_another_tenant_nothing(world: World, outsider_user: User) -> None:
    _outsider_sees_nothing_of_acme_in(fresh_client(outsider_user), world)

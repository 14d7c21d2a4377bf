"""Staff view a tenant in a real browser: the buttons that would change something are disabled
with the reason, and an in-place button that is pressed anyway (a page opened before the view
began) shows the refusal where its result would go."""

from __future__ import annotations

import pytest

from accounts.models import Role
from channels import services as channel_services
from channels.kinds import Security, SmtpConfig
from channels.models import Channel
from staff.models import StaffAuditEvent
from tests.browser.conftest import step
from tests.conftest import add_totp
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.security.conftest import fresh_client

pytestmark = pytest.mark.browser

REASON = "You are viewing Acme read-only: nothing can be changed."


def test_while_viewing_buttons_are_disabled_and_a_refused_one_says_why(page, live_url: str) -> None:
    acme = TenantFactory(name="Acme", slug="acme")
    admin = MembershipFactory(tenant=acme, role=Role.ADMIN, user__email="admin@acme.test").user
    team = channel_services.channel_save_smtp(
        tenant=acme,
        actor=admin,
        owner=None,
        config=SmtpConfig(
            host="localhost",
            port=2525,
            security=Security.STARTTLS,
            auth_method="PLAIN",
            username="relay",
            sending_domain="acme.test",
        ),
        password="relay-password",
        use_for_all_members=True,
    )
    staff = UserFactory(email="staff@msc.test", is_staff=True, is_superuser=True)
    add_totp(staff)
    client = fresh_client(staff)
    client.post(f"/staff/tenants/{acme.pk}/view-as/")
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_url}]
    )

    page.goto(f"{live_url}/channels/team/")
    step(page, "team settings while viewing")
    test_button = page.locator(f"#smtp-{team.pk} button:has-text('Test connection')")
    assert test_button.is_disabled()
    assert page.locator("button:has-text('Save throttling')").is_disabled()
    assert REASON in page.inner_text("main")  # said in words, not only on hover
    assert page.locator("button:has-text('Stop viewing')").is_enabled()
    assert page.locator("button:has-text('Sign out')").is_enabled()

    # As if the page had been opened before the view began: the button is pressed anyway.
    page.evaluate(
        "document.querySelectorAll('fieldset.view-as-locked')"
        ".forEach(function (f) { f.disabled = false; })"
    )
    test_button.click()
    result = page.locator(f"#test-result-{team.pk} [role=alert]")
    result.wait_for()
    step(page, "refused in place")
    assert result.inner_text() == REASON
    assert page.locator("#toast").inner_text() == REASON
    team.refresh_from_db()
    assert team.last_test_at is None  # nothing was tried
    assert StaffAuditEvent.objects.filter(
        action="refused while viewing as tenant", subject=f"POST /channels/{team.pk}/test/"
    ).exists()
    assert Channel.objects.get(pk=team.pk).status == team.status
    # The refused request's own 403 is reported by the browser and htmx; nothing else (no CSP
    # violation, no script error).
    assert [e for e in page.console_errors if "403" not in e] == []

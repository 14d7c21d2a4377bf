"""An admin sets up the team SMTP channel and tests it, in a real browser against a real
SMTP server (aiosmtpd with STARTTLS on loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from channels.models import Channel
from msc_admin.devtls import make_certificates
from tests.browser.conftest import step
from tests.conftest import add_totp, totp_code
from tests.factories import PASSWORD, MembershipFactory, TenantFactory
from tests.mailservers import smtp_server

pytestmark = pytest.mark.browser


def test_an_admin_sets_up_and_tests_the_team_smtp_channel(
    page,
    live_url: str,
    settings,
    tmp_path: Path,
) -> None:
    certs = make_certificates(tmp_path)
    settings.MSC_EXTRA_CA_FILE = str(certs.ca_file)
    acme = TenantFactory(name="Acme", slug="acme")
    admin = MembershipFactory(tenant=acme, role=Role.ADMIN, user__email="admin@acme.test").user
    secret = add_totp(admin)

    page.goto(f"{live_url}/accounts/login/")
    page.fill("input[name=login]", "admin@acme.test")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.fill("input[name=code]", totp_code(secret))
    page.click("form button[type=submit]")
    page.wait_for_url(f"{live_url}/")
    step(page, "signed in with totp")

    with smtp_server(mode="starttls", cert=certs.trusted, users={"apikey": "SG.key"}) as server:
        page.goto(f"{live_url}/channels/team/")
        page.click("text=Set up a team SMTP channel")
        # Changing credentials needs a recent password: the sign-in just now is one.
        page.wait_for_url(f"{live_url}/channels/team/smtp/")
        step(page, "team smtp form")

        page.fill("input[name=host]", "smtp.gmail.com")
        page.fill("input[name=port]", str(server.port))
        page.fill("input[name=username]", "apikey")
        page.fill("input[name=password]", "SG.key")
        page.fill("input[name=sending_domain]", "acme.test")
        page.click("button:has-text('Save')")
        # A Gmail server is refused with a pointer to Email Connection; the rest is kept.
        assert "Connect it through" in page.inner_text("main")
        step(page, "gmail host refused")
        assert page.input_value("input[name=username]") == "apikey"
        page.fill("input[name=host]", "localhost")
        page.fill("input[name=password]", "SG.key")
        page.check("input[name=use_for_all_members]")
        page.click("button:has-text('Save')")
        page.wait_for_url(f"{live_url}/channels/team/")
        step(page, "team channel saved")

        page.evaluate("window.__noReload = true")
        pk = Channel.objects.get(tenant=acme, owner__isnull=True).pk
        assert page.inner_text(f"#last-test-{pk}") == "not tested yet"
        page.click("button:has-text('Test connection')")
        result = page.locator(".result")
        result.wait_for(timeout=15000)
        assert "Connection, TLS and authentication succeeded." in result.inner_text()
        # The card's last test is updated in place, without a reload.
        expect(page.locator(f"#last-test-{pk}")).to_contain_text("passed")
        expect(page.locator(f"#last-test-{pk}")).to_contain_text("just now")
        step(page, "connection tested")
        assert page.evaluate("window.__noReload") is True

    channel = Channel.objects.get(tenant=acme, owner__isnull=True)
    assert channel.use_for_all_members and channel.read_secret() == {"password": "SG.key"}
    assert server.received.auth_attempts == [("PLAIN", "apikey")]
    # The refused form answered 400 on purpose; anything else in the console is a failure.
    assert [e for e in page.console_errors if "status of 400" not in e] == []

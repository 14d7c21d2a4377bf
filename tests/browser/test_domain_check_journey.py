"""An admin is told on the home page that the team channel's sending domain lacks SPF for
SendGrid, follows the link to the DNS check on the team card, fixes the zone (a real
authoritative DNS server on loopback), clicks Check DNS now and sees it pass, in place."""

from __future__ import annotations

import copy

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from channels import services
from channels.kinds import SmtpConfig
from channels.models import DomainCheckState, SendingDomainCheck
from tests.browser.conftest import step
from tests.channels.test_domain_check import ZONE
from tests.conftest import add_totp, totp_code
from tests.dnsserver import dns_server
from tests.factories import PASSWORD, MembershipFactory, TenantFactory

pytestmark = pytest.mark.browser


def test_an_admin_fixes_spf_for_sendgrid_and_checks_dns_again(
    page, live_url: str, settings
) -> None:
    acme = TenantFactory(name="Acme", slug="acme")
    admin = MembershipFactory(tenant=acme, role=Role.ADMIN, user__email="admin@acme.test").user
    secret = add_totp(admin)
    records = copy.deepcopy(ZONE)
    records["acme.test"] = ['TXT "v=spf1 include:_spf.google.com ~all"', "MX 10 mx.acme.test."]
    with dns_server(records) as zone:
        settings.MSC_DNS_NAMESERVERS = [zone.address]
        settings.MSC_DNS_TIMEOUT = 2
        channel = services.channel_save_smtp(
            tenant=acme,
            actor=admin,
            owner=None,
            config=SmtpConfig(
                host="smtp.sendgrid.net", username="apikey", sending_domain="acme.test"
            ),
            password="SG.key",
            use_for_all_members=True,
        )
        row = SendingDomainCheck.objects.get(channel=channel)
        assert row.state == DomainCheckState.FAIL

        page.goto(f"{live_url}/accounts/login/")
        page.fill("input[name=login]", "admin@acme.test")
        page.fill("input[name=password]", PASSWORD)
        page.click("form button[type=submit]")
        page.fill("input[name=code]", totp_code(secret))
        page.click("form button[type=submit]")
        page.wait_for_url(f"{live_url}/")
        warning = page.locator(".domain-warning")
        expect(warning).to_contain_text("SPF record does not authorise SendGrid")
        expect(warning).to_contain_text("v=spf1 include:_spf.google.com include:sendgrid.net ~all")
        step(page, "home warns about spf")

        page.click("text=See acme.test's DNS check")
        page.wait_for_url(f"{live_url}/channels/team/#domain-check-{row.pk}")
        card = page.locator(f"#domain-check-{row.pk}")
        spf = card.locator("[data-check=spf]")
        expect(spf).to_contain_text("fail")
        value = spf.locator("input[readonly]").nth(2)
        assert value.input_value() == "v=spf1 include:_spf.google.com include:sendgrid.net ~all"
        step(page, "card shows the record to add")

        # The admin adds the record at their DNS host, then asks again.
        zone.records["acme.test"][0] = f'TXT "{value.input_value()}"'
        page.evaluate("window.__noReload = true")
        card.locator("button:has-text('Check DNS now')").click()
        spf = page.locator(f"#domain-check-{row.pk} [data-check=spf]")
        expect(spf).to_contain_text("pass")
        expect(spf).to_contain_text("authorises SendGrid (include:sendgrid.net)")
        expect(page.locator(f"#domain-check-title-{row.pk}")).to_contain_text("pass")
        assert page.evaluate("window.__noReload") is True
        step(page, "checked again: pass")
        row.refresh_from_db()
        assert row.state == DomainCheckState.PASS

        page.goto(f"{live_url}/")
        expect(page.locator("h1")).to_contain_text("Acme")
        assert page.locator(".domain-warning").count() == 0
    assert page.console_errors == []

"""A rep starts a campaign and watches its email move through the Outbox, in a real browser, with
a real Celery worker sending to a real SMTP relay on loopback."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from channels import services as channel_services
from channels.kinds import Security, SmtpConfig
from msc_admin.devtls import Certificates
from sending.models import (
    Campaign,
    CampaignStep,
    Contact,
    Enrollment,
    Message,
    MessageStatus,
    Template,
)
from tests.browser.conftest import step
from tests.factories import PASSWORD, MembershipFactory, TenantFactory
from tests.mailservers import smtp_server
from tests.workers import celery_worker

pytestmark = [pytest.mark.browser, pytest.mark.celery_worker]


def test_a_rep_sends_a_campaign_and_watches_it_move_through_the_outbox(
    page, live_url: str, certs: Certificates
) -> None:
    acme = TenantFactory(name="Acme", slug="acme")
    admin = MembershipFactory(tenant=acme, role=Role.ADMIN, user__email="admin@acme.test").user
    rep = MembershipFactory(tenant=acme, role=Role.REP, user__email="rep@acme.test").user
    with smtp_server(
        mode="starttls", cert=certs.trusted, users={"relay": "secret"}, data_delay=2.0
    ) as relay:
        channel_services.channel_save_smtp(
            tenant=acme,
            actor=admin,
            owner=None,
            config=SmtpConfig(
                host=relay.host, port=relay.port, security=Security.STARTTLS, username="relay"
            ),
            password="secret",
            use_for_all_members=True,
        )
        identity = channel_services.identity_ensure_default(user=rep, tenant=acme)
        template = Template.objects.create(
            tenant=acme, owner=rep, name="Intro", subject="Hi {{first_name}}", body="Hello!"
        )
        campaign = Campaign.objects.create(tenant=acme, owner=rep, identity=identity, name="Q4")
        CampaignStep.objects.create(campaign=campaign, position=1, template=template)
        for name in ("ann", "bob", "cat"):
            contact = Contact.objects.create(
                tenant=acme, email=f"{name}@prospect.test", first_name=name.title()
            )
            Enrollment.objects.create(tenant=acme, campaign=campaign, contact=contact)

        with celery_worker("browser-sender"):
            page.goto(f"{live_url}/accounts/login/")
            page.fill("input[name=login]", "rep@acme.test")
            page.fill("input[name=password]", PASSWORD)
            page.click("main form button[type=submit]")
            page.wait_for_url(f"{live_url}/")
            page.click("nav.mainnav >> text=Campaigns")
            page.click("text=Q4")
            page.click("main form button:has-text('Start campaign')")
            expect(page.locator(".flash")).to_contain_text("Campaign started.")
            step(page, "campaign started")
            page.click("nav.mainnav >> text=Outbox")
            queued = page.locator("[data-folder=queued] .count")
            sent = page.locator("[data-folder=sent] .count")
            # The worker sends one every second or so; the page follows without a reload.
            expect(page.locator("table.messages")).to_contain_text("Campaign: Q4, step 1")
            expect(sent).to_have_text("3", timeout=30_000)
            expect(queued).to_have_text("0")
            step(page, "outbox all sent")
            page.click("[data-folder=sent]")
            for name in ("ann", "bob", "cat"):
                expect(page.locator("table.messages")).to_contain_text(f"{name}@prospect.test")
            expect(page.locator("table.messages")).to_contain_text("Hi Ann")
    assert len(relay.received.messages) == 3
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 3

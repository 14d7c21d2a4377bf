"""The live feed shows a bounce recorded while the page is open, without a reload."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Role
from bounces import services as bounces
from channels import services as channel_services
from sending.models import MessageStatus
from tests.bounces.conftest import dsn_for
from tests.factories import PASSWORD, MembershipFactory, TenantFactory
from tests.sending.conftest import gmail_channel, queue_message

pytestmark = [pytest.mark.browser]


def test_a_new_bounce_appears_in_the_open_live_feed(page, live_url: str) -> None:
    acme = TenantFactory(name="Acme", slug="acme")
    rep = MembershipFactory(tenant=acme, role=Role.REP, user__email="rep@acme.test").user
    identity = channel_services.identity_ensure_default(user=rep, tenant=acme)
    identity.channel = gmail_channel(acme, rep)
    identity.save()
    message = queue_message(acme, rep, identity, to="gone@prospect.test", subject="Quick question")
    type(message).objects.filter(pk=message.pk).update(
        status=MessageStatus.SENT, sent_at=timezone.now(), next_attempt_at=None
    )
    message.refresh_from_db()

    page.goto(f"{live_url}/accounts/login/")
    page.fill("input[name=login]", "rep@acme.test")
    page.fill("input[name=password]", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{live_url}/")
    page.goto(f"{live_url}/analytics/live/")
    expect(page.locator("#feed-empty")).to_be_visible()
    url_before = page.url

    bounces.ingest(tenant=acme, raw=dsn_for(message))  # a scanner records it meanwhile

    item = page.locator("#feed .feed-item.new")
    expect(item).to_contain_text(
        "gone@prospect.test bounced (Mailbox does not exist, hard)", timeout=15_000
    )
    expect(item).to_contain_text("Quick question")
    expect(page.locator("#feed-empty")).to_be_hidden()
    assert page.url == url_before  # no navigation happened
    item.locator("a").click()
    expect(page.locator("main")).to_contain_text("gone@prospect.test")
    assert not page.console_errors, page.console_errors

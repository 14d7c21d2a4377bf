"""The rep's whole journey in Chromium: connect Gmail (Google faked at the HTTP boundary only),
start a campaign that a real Celery worker sends over Gmail's SMTP (aiosmtpd with XOAUTH2 on
loopback), a bounce lands in the rep's mailbox on a real Dovecot, the open live feed shows it
without a reload, and template and campaign analytics count it."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import responses
from playwright.sync_api import expect

from accounts.models import Role
from bounces import inbox
from channels import services as channel_services
from channels.kinds import ChannelKind
from channels.models import Channel
from msc_admin.devtls import Certificates
from sending.models import Campaign, CampaignStep, Contact, Enrollment, Message, MessageStatus
from sending.models import Template as MailTemplate
from tests.bounces.conftest import dovecot, dsn_for  # noqa: F401
from tests.browser.conftest import step
from tests.factories import PASSWORD, MembershipFactory, TenantFactory
from tests.mailservers import ImapServer, smtp_server
from tests.workers import celery_worker

pytestmark = [pytest.mark.browser, pytest.mark.celery_worker]

ACCESS, REFRESH = "ya29.browser-access", "1//browser-refresh"


@pytest.fixture
def google(settings) -> Iterator[responses.RequestsMock]:
    """Google's token, userinfo and send-as endpoints, as the server calls them (``requests``)."""
    providers = {**settings.SOCIALACCOUNT_PROVIDERS}
    providers["google"] = {
        **providers["google"],
        "APPS": [{"client_id": "test.apps.googleusercontent.com", "secret": "shh", "key": ""}],
    }
    settings.SOCIALACCOUNT_PROVIDERS = providers
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        mock.post(
            "https://oauth2.googleapis.com/token",
            json={
                "access_token": ACCESS,
                "refresh_token": REFRESH,
                "expires_in": 3599,
                "token_type": "Bearer",
            },
        )
        mock.get(
            "https://www.googleapis.com/oauth2/v2/userinfo",
            json={"id": "1076915", "email": "rep@acme.test", "verified_email": True},
        )
        # The addresses the mailbox may send as (users.settings.sendAs.list), read on connect.
        mock.get(
            "https://gmail.googleapis.com/gmail/v1/users/me/settings/sendAs",
            json={"sendAs": [{"sendAsEmail": "rep@acme.test", "isPrimary": True}]},
        )
        yield mock


def _consent_screen(route) -> None:
    """Google's consent page, as the browser meets it: the user agrees at once and Google sends
    the browser back to our callback with a code and the state it was given."""
    query = parse_qs(urlparse(route.request.url).query)
    back = query["redirect_uri"][0] + "?" + urlencode({"state": query["state"][0], "code": "c1"})
    route.fulfill(status=302, headers={"Location": back})


def test_a_rep_connects_gmail_sends_a_campaign_and_watches_a_bounce_arrive(
    page,
    live_url: str,
    google: responses.RequestsMock,
    dovecot: ImapServer,  # noqa: F811
    certs: Certificates,
    settings,
) -> None:
    acme = TenantFactory(name="Acme", slug="acme")
    rep = MembershipFactory(tenant=acme, role=Role.REP, user__email="rep@acme.test").user
    identity = channel_services.identity_ensure_default(user=rep, tenant=acme)
    template = MailTemplate.objects.create(
        tenant=acme, owner=rep, name="Intro", subject="Hi {{first_name}}", body="Hello!"
    )
    campaign = Campaign.objects.create(tenant=acme, owner=rep, identity=identity, name="Q4")
    CampaignStep.objects.create(campaign=campaign, position=1, template=template)
    for name in ("ann", "bob", "cat"):
        contact = Contact.objects.create(
            tenant=acme, owner=rep, email=f"{name}@prospect.test", first_name=name.title()
        )
        Enrollment.objects.create(tenant=acme, campaign=campaign, contact=contact)
    dovecot.add_user("rep@acme.test", ACCESS)
    page.route("https://accounts.google.com/**", _consent_screen)

    with (
        smtp_server(mode="starttls", cert=certs.trusted, tokens={ACCESS}) as gmail_smtp,
        # A real worker with the periodic schedule: Gmail's 2-a-second limit makes the third
        # message wait, and beat hands it over when its turn comes.
        celery_worker(
            "gmail-journey", {"MSC_GMAIL_SMTP": f"localhost:{gmail_smtp.port}"}, beat=True
        ),
    ):
        settings.MSC_GMAIL_SMTP = f"localhost:{gmail_smtp.port}"
        page.goto(f"{live_url}/accounts/login/")
        page.fill("input[name=login]", "rep@acme.test")
        page.fill("input[name=password]", PASSWORD)
        page.click("main form button[type=submit]")
        page.wait_for_url(f"{live_url}/")
        step(page, "signed in")

        page.goto(f"{live_url}/channels/")
        # Connecting a mailbox changes credentials: the sign-in just now counts as a recent
        # password confirmation, so it is not asked for again.
        page.click("button:has-text('Connect Gmail')")
        page.wait_for_url(f"{live_url}/channels/")
        expect(page.locator("main")).to_contain_text("Connected as rep@acme.test")
        step(page, "gmail connected")
        channel = Channel.objects.get(owner=rep, kind=ChannelKind.GMAIL)
        # Read by IMAP here: the loopback Dovecot stands in for Gmail's inbox.
        Channel.objects.filter(pk=channel.pk).update(config={**channel.config, "reading": "imap"})

        page.click("nav.mainnav >> text=Campaigns")
        page.click("text=Q4")
        page.click("main form button:has-text('Start campaign')")
        expect(page.locator(".flash")).to_contain_text("Campaign started.")
        page.click("nav.mainnav >> text=Outbox")
        expect(page.locator("[data-folder=sent] .count")).to_have_text("3", timeout=30_000)
        step(page, "campaign sent")
    assert len(gmail_smtp.received.messages) == 3
    assert all(m.channel_id == channel.pk for m in Message.objects.all())

    page.goto(f"{live_url}/analytics/live/")
    step(page, "live feed open")
    url_before = page.url
    bob = Message.objects.get(to_email="bob@prospect.test")
    dovecot.deliver("rep@acme.test", ACCESS, dsn_for(bob))
    report = inbox.scan(channel.pk)  # what the periodic scan does in a worker
    assert report.ok and report.found == 1, report

    item = page.locator("#feed .feed-item.new")
    expect(item).to_contain_text("bob@prospect.test bounced", timeout=15_000)
    assert page.url == url_before  # it arrived without a reload
    step(page, "bounce in the feed")

    page.goto(f"{live_url}/analytics/")
    row = page.locator("table tr", has_text="Intro")
    expect(row.locator("[data-label=Sent]")).to_have_text("3")
    expect(row.locator("[data-label=Bounced]")).to_have_text("1")
    expect(row.locator("[data-label='Bounce rate']")).to_have_text("33.3 %")
    step(page, "template analytics")
    page.goto(f"{live_url}/analytics/campaigns/")
    step_row = page.locator("table tr", has_text="Intro")
    expect(step_row.locator("[data-label=Sent]")).to_have_text("3")
    expect(step_row.locator("[data-label='Hard / soft']")).to_have_text("1 / 0")
    step(page, "campaign analytics")
    assert Message.objects.get(pk=bob.pk).status == MessageStatus.BOUNCED
    assert not page.console_errors, page.console_errors

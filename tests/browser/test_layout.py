"""Layout defects a new user met, measured in Chromium: a button's label on one line at
1280 px; at a 390 px phone nothing is clipped or scrolls sideways. And Compose: choosing a
template fills Subject and Body at once, through htmx in the page."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Tenant, User
from bounces import services as bounces
from channels import services as channel_services
from channels.kinds import ChannelKind, SmtpConfig
from channels.models import Channel, Identity
from sending.models import Template
from tests.bounces.conftest import dsn_for, mark_sent
from tests.browser.conftest import step
from tests.security.conftest import fresh_client
from tests.sending.conftest import contact, queue_message, relay, rep_identity, team_channel  # noqa: F401

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# Elements inside ``selector`` whose right edge passes the container's (clipped or overflowing).
CLIPPED = """(selector) => {
    const box = document.querySelector(selector);
    const edge = box.getBoundingClientRect().right + 1;
    return [...box.querySelectorAll('*')]
        .filter(e => e.getClientRects().length && e.getBoundingClientRect().right > edge)
        .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
                  (e.className ? '.' + String(e.className).trim().split(/\\s+/).join('.') : ''));
}"""
SIDEWAYS = "document.documentElement.scrollWidth - window.innerWidth"


def _open(open_page, live_url: str, user: User, viewport: dict[str, int], label: str):
    client: Client = fresh_client(user)
    page = open_page(viewport, label)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_url}]
    )
    return page


@pytest.fixture
def identities(acme: Tenant, rep_user: User, admin_user: User) -> list[Identity]:
    """A rep with long addresses and channels with long names, as a real team has."""
    channel_services.channel_save_smtp(
        tenant=acme,
        actor=admin_user,
        owner=None,
        config=SmtpConfig(
            host="smtp.eu-west-1.relay.sendgrid-enterprise.example.net",
            port=587,
            username="apikey",
            sending_domain="acme.test",
        ),
        password="x",
        use_for_all_members=True,
    )
    Channel.objects.create(
        tenant=acme,
        owner=rep_user,
        kind=ChannelKind.GMAIL,
        account_email="rep.with.a.long.mailbox.name@acme-corporation.example",
    )
    default = channel_services.identity_ensure_default(user=rep_user, tenant=acme)
    second = Identity.objects.create(
        tenant=acme,
        user=rep_user,
        email="regional.sales.development.representatives@acme-corporation.example",
        name="Regional Sales Development",
        verified_at=timezone.now(),
    )
    return [default, second]


def test_the_identities_set_button_stays_on_one_line_at_1280(
    open_page, live_url: str, rep_user: User, identities: list[Identity]
) -> None:
    page = _open(open_page, live_url, rep_user, DESKTOP, "rep")
    page.goto(f"{live_url}/channels/?section=identities#identities")
    step(page, "identities at 1280 px")
    buttons = page.locator("#identities ~ .table-wrap button", has_text="Set")
    assert buttons.count() == len(identities)
    for index in range(buttons.count()):
        box = buttons.nth(index).evaluate(
            """b => ({h: b.getBoundingClientRect().height,
                      line: parseFloat(getComputedStyle(b).lineHeight),
                      pad: parseFloat(getComputedStyle(b).paddingTop) +
                           parseFloat(getComputedStyle(b).paddingBottom) +
                           parseFloat(getComputedStyle(b).borderTopWidth) +
                           parseFloat(getComputedStyle(b).borderBottomWidth),
                      text: b.innerText})"""
        )
        assert box["text"] == "Set"
        # One line of text: the height is one line-height plus padding and border.
        assert box["h"] <= box["line"] + box["pad"] + 1, box


def test_the_identities_table_fits_a_phone(
    open_page, live_url: str, rep_user: User, identities: list[Identity]
) -> None:
    page = _open(open_page, live_url, rep_user, PHONE, "rep-phone")
    page.goto(f"{live_url}/channels/?section=identities#identities")
    step(page, "identities at 390 px")
    assert page.evaluate(SIDEWAYS) <= 0
    assert page.evaluate(CLIPPED, "#identities ~ .table-wrap") == []
    # Every identity's address and its Set button can be seen.
    for identity in identities:
        assert page.get_by_text(identity.email).first.is_visible()


def test_a_bounce_with_a_long_address_fits_a_phone(
    open_page,
    live_url: str,
    acme: Tenant,
    rep_user: User,
    admin_user: User,
    rep_identity: Identity,  # noqa: F811
) -> None:
    address = "procurement.department.europe.middle.east.africa@subsidiary-holdings.example"
    message = mark_sent(queue_message(acme, rep_user, rep_identity, to=address))
    (done,) = bounces.ingest_many(
        tenant=acme, items=[bounces.Incoming(dsn_for(message), timezone.now())]
    )
    (event,) = done.created
    page = _open(open_page, live_url, admin_user, PHONE, "admin-phone")
    page.goto(f"{live_url}/bounces/{event.pk}/")
    step(page, "bounce detail at 390 px")
    assert page.locator("h1").inner_text().startswith("Bounce for")
    assert page.evaluate(SIDEWAYS) <= 0
    assert page.evaluate(CLIPPED, "main") == []


def test_choosing_a_template_in_compose_fills_subject_and_body(
    open_page,
    live_url: str,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,  # noqa: F811
) -> None:
    template = Template.objects.create(
        tenant=acme,
        owner=rep_user,
        name="Intro",
        subject="Quick question, {{first_name|there}}",
        body="Hi {{first_name|there}},\nA short note.",
    )
    page = _open(open_page, live_url, rep_user, DESKTOP, "compose")
    page.goto(f"{live_url}/outbox/compose/")
    page.fill("#id_to", "pat@prospect.test")
    page.select_option("#id_template", str(template.pk))
    # htmx swaps the fields in: wait for the value, with the page's own deadline.
    page.wait_for_function(
        "s => document.querySelector('#id_subject').value === s", arg=template.subject
    )
    step(page, "template chosen")
    assert page.input_value("#id_body") == template.body
    assert page.input_value("#id_to") == "pat@prospect.test"  # nothing typed is lost
    assert page.console_errors == []

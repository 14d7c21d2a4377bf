from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from django.urls import reverse

from accounts.models import Membership, Tenant, User

DEMO_USERS = [
    "admin@acme.test",
    "rep@acme.test",
    "admin@globex.test",
    "rep@globex.test",
    "staff@msc.test",
]


@pytest.mark.django_db
@override_settings(DEBUG=True)
def test_seed_demo_is_idempotent_and_every_demo_user_can_sign_in() -> None:
    call_command("seed_demo")
    counts = (User.objects.count(), Tenant.objects.count(), Membership.objects.count())
    call_command("seed_demo")
    assert (
        (User.objects.count(), Tenant.objects.count(), Membership.objects.count())
        == counts
        == (5, 2, 4)
    )
    assert Tenant.objects.get(slug="globex").legacy_toutapp
    assert not Tenant.objects.get(slug="acme").legacy_toutapp
    assert User.objects.get(email="staff@msc.test").is_staff

    with override_settings(MSC_REQUIRE_MFA=False):
        for email in DEMO_USERS:
            client = Client()
            response = client.post(
                reverse("account_login"), {"login": email, "password": "demo-password-123"}
            )
            assert response.status_code == 302, email
            landing = client.get(reverse("home"), follow=True)
            assert landing.status_code == 200, email


@pytest.mark.django_db
@override_settings(DEBUG=False)
def test_seed_demo_refuses_without_debug_unless_forced() -> None:
    with pytest.raises(CommandError, match="refuses to run with DEBUG=false"):
        call_command("seed_demo")
    assert not User.objects.exists()
    call_command("seed_demo", force=True)
    assert User.objects.count() == 5


@pytest.mark.django_db
@override_settings(DEBUG=True, MSC_REQUIRE_MFA=False)  # as bin/run serves the demo
def test_the_demo_data_is_consistent_and_honest() -> None:
    """Every seeded channel that mail is routed to can send here; the demo's placeholder
    mailbox says it is one; an ended campaign ran (people, mail) and its steps stay."""
    import re

    from channels.kinds import ChannelKind
    from channels.models import Channel, Identity
    from channels.routing import Source, route
    from sending.models import Campaign, CampaignStatus

    call_command("seed_demo")
    call_command("seed_demo")  # idempotent
    # The demo relay stands in for SMTP servers (and Gmail's); nothing for Exchange servers.
    can_send_here = {ChannelKind.CUSTOM_SMTP, ChannelKind.MSC_LEGACY, ChannelKind.GMAIL}
    for email in DEMO_USERS[:4]:
        user = User.objects.get(email=email)
        identity = Identity.objects.get(user=user, is_default=True)
        where = route(user=user, identity=identity, source=Source.WEB)
        assert where.channel is not None and where.channel.kind in can_send_here, email
    gina = User.objects.get(email="admin@globex.test")
    where = route(
        user=gina, identity=Identity.objects.get(user=gina, is_default=True), source=Source.WEB
    )
    assert where.channel is not None and where.channel.label == "Team channel: Custom SMTP"
    assert Channel.objects.filter(owner=gina, kind=ChannelKind.EXCHANGE_ONPREM).exists()
    assert Channel.objects.get(kind=ChannelKind.GMAIL).oauth.demo
    # Each identity is given only a channel that may send as it (a mailbox: its own addresses).
    for identity in Identity.objects.filter(channel__isnull=False).select_related("channel"):
        assert identity.channel.may_send_as(identity.email), identity.email
    assert Channel.objects.get(kind=ChannelKind.EXCHANGE_ONLINE).oauth.demo

    def page(email: str, url: str) -> str:
        client = Client()
        client.force_login(User.objects.get(email=email))
        return client.get(url).content.decode()

    acme_rep = page("rep@acme.test", reverse("channels:overview"))
    gmail = acme_rep[acme_rep.index('id="connect-gmail"') :]
    gmail = gmail[: gmail.index("</section>")]
    assert "demo placeholder" in gmail and "not a real Gmail sign-in" in gmail
    assert "cannot be renewed" not in gmail
    acme_admin = page("admin@acme.test", reverse("channels:overview"))
    exchange = acme_admin[acme_admin.index('id="connect-exchange-online"') :]
    exchange = exchange[: exchange.index("</section>")]
    assert "demo placeholder" in exchange and "cannot go out" in exchange
    globex_rep = page("rep@globex.test", reverse("channels:overview"))
    assert "Gmail connections are not available on this server" in globex_rep
    assert "Exchange Online connections are not available on this server" in acme_rep

    ended = Campaign.objects.get(tenant__slug="acme", name="Q3 webinar follow-up")
    assert ended.status == CampaignStatus.ENDED
    campaign_page = page("rep@acme.test", reverse("sending:campaign", args=[ended.pk]))
    assert "4 enrolled" in campaign_page and "Finished" in campaign_page
    assert "{{" not in "".join(ended.steps.values_list("messages__body", flat=True))

    # Mail sent from the Gmail plugin went through its sender's Gmail connection, and says so.
    from sending.models import Message

    plugin_mail = Message.objects.filter(source=Source.GMAIL_PLUGIN).select_related("channel")
    assert plugin_mail.exists()
    assert {(m.channel.kind, m.channel.owner_id == m.sender_id) for m in plugin_mail} == {
        (ChannelKind.GMAIL, True)
    }
    sent = page(
        "rep@acme.test", reverse("sending:outbox_folder", args=["sent"]) + "?source=gmail_plugin"
    )
    cells = re.findall(r'<td data-label="Channel">(.*?)</td>', sent, re.S)
    assert cells and all("Gmail plugin" in cell for cell in cells)
    assert not [cell for cell in cells if "Team channel" in cell]
    assert re.findall(r'<td data-label="Sent">([^<]*)</td>', campaign_page) == ["4", "4", "4"]
    assert "/remove/" not in campaign_page

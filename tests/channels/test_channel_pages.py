"""Channel settings pages through the client: personas, legacy visibility, the SMTP form."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from channels import services as channel_services
from channels.kinds import ChannelKind, SmtpConfig
from channels.models import BlockedDomain, Channel, ChannelAuditEvent, TeamSendingSettings
from channels.services import channel_save_smtp
from msc_admin.devtls import Certificates
from msc_admin.stored import read
from tests.mailservers import smtp_server

SMTP_POST = {
    "host": "localhost",
    "port": "2525",
    "security": "starttls",
    "auth_method": "PLAIN",
    "username": "apikey",
    "password": "SG.the-real-key",
    "sending_domain": "acme.test",
}


def _team_channel(
    tenant: Tenant,
    actor: User,
    port: int = 2525,
    password: str = "right",
) -> Channel:
    config = SmtpConfig(host="localhost", port=port, username="alice", sending_domain="acme.test")
    return channel_save_smtp(
        tenant=tenant,
        actor=actor,
        owner=None,
        config=config,
        password=password,
        use_for_all_members=True,
    )


# --- access -------------------------------------------------------------------------------

TEAM_GET = ["channels:team", "channels:team_smtp_edit", "channels:audit"]
TEAM_POST = [
    "channels:throttling",
    "channels:spike_protection",
    "channels:soft_bounces",
    "channels:blocked_add",
]
# A valid submission of each team form, and what it saves (field values after saving).
TEAM_SAVES = {
    "channels:throttling": (
        {"throttling_enabled": "on", "batch_size": "7", "wait_seconds": "90"},
        {"throttling_enabled": True, "batch_size": 7, "wait_seconds": 90},
        "Email Connection throttling",
    ),
    "channels:spike_protection": (
        {"spike_threshold_pct": "35", "spike_min_sent": "80"},
        {"spike_protection": False, "spike_threshold_pct": 35, "spike_min_sent": 80},
        "Bounce-spike protection",
    ),
    "channels:soft_bounces": (
        {"soft_bounce_limit": "2", "soft_bounce_days": "5"},
        {"soft_bounce_limit": 2, "soft_bounce_days": 5},
        "Soft-bounce policy",
    ),
    "channels:blocked_add": ({"domain": "Rival.example"}, {}, "blocked domain rival.example"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["channels:overview", "channels:smtp_edit", *TEAM_GET])
def test_anonymous_visitors_are_sent_to_login(client: Client, name: str) -> None:
    response = client.get(reverse(name))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("name", TEAM_GET)
def test_reps_get_403_on_team_settings(fresh_rep_client: Client, name: str) -> None:
    assert fresh_rep_client.get(reverse(name)).status_code == 403


@pytest.mark.parametrize("name", TEAM_POST)
def test_reps_cannot_post_team_settings(fresh_rep_client: Client, acme: Tenant, name: str) -> None:
    response = fresh_rep_client.post(
        reverse(name), {"domain": "x.com", "batch_size": 1, "wait_seconds": 1}
    )
    assert response.status_code == 403
    assert not ChannelAuditEvent.objects.exists()


@pytest.mark.django_db(transaction=True)  # autocommit, as production serves each request
@pytest.mark.parametrize("htmx", [False, True], ids=["plain", "htmx"])
@pytest.mark.parametrize("name", TEAM_POST)
def test_admins_save_each_team_form(
    admin_client: Client, acme: Tenant, name: str, htmx: bool
) -> None:
    data, saved, subject = TEAM_SAVES[name]
    headers = {"HX-Request": "true"} if htmx else {}
    response = admin_client.post(reverse(name), data, headers=headers)
    assert response.status_code == 302 and response["Location"] == reverse("channels:team")
    if name == "channels:blocked_add":
        assert BlockedDomain.objects.filter(tenant=acme, domain="rival.example").exists()
    else:
        rules = TeamSendingSettings.objects.get(tenant=acme)
        assert {field: getattr(rules, field) for field in saved} == saved
    audited = ChannelAuditEvent.objects.filter(tenant=acme)
    assert [read(e.subject) for e in audited].count(subject) == 1


@pytest.mark.parametrize("name", TEAM_GET)
def test_admins_reach_team_settings(fresh_admin_client: Client, name: str) -> None:
    assert fresh_admin_client.get(reverse(name)).status_code == 200


@pytest.mark.parametrize("name", ["channels:test", "channels:test_email", "channels:remove"])
def test_another_tenants_channel_answers_404(
    outsider_client: Client, acme: Tenant, admin_user: User, name: str
) -> None:
    channel = _team_channel(acme, admin_user)
    response = outsider_client.post(reverse(name, args=[channel.pk]), {"to": "a@b.test"})
    assert response.status_code == 404
    assert Channel.objects.filter(pk=channel.pk).exists()


def test_another_members_personal_channel_answers_404(
    rep_client: Client, acme: Tenant, admin_user: User
) -> None:
    config = SmtpConfig(host="localhost", port=2525, username="a", sending_domain="acme.test")
    mine = channel_save_smtp(
        tenant=acme, actor=admin_user, owner=admin_user, config=config, password="p"
    )
    assert rep_client.post(reverse("channels:remove", args=[mine.pk])).status_code == 404
    assert rep_client.post(reverse("channels:test", args=[mine.pk])).status_code == 404


def test_reps_cannot_change_the_team_channel(
    rep_client: Client, acme: Tenant, admin_user: User
) -> None:
    channel = _team_channel(acme, admin_user)
    assert rep_client.post(reverse("channels:remove", args=[channel.pk])).status_code == 403
    assert Channel.objects.filter(pk=channel.pk).exists()


@pytest.mark.parametrize(
    "name", ["channels:legacy_select", "channels:identity_add", "channels:throttling"]
)
def test_posts_only_routes_refuse_get(fresh_admin_client: Client, name: str) -> None:
    assert fresh_admin_client.get(reverse(name)).status_code == 405


# --- legacy MSC servers -------------------------------------------------------------------


def test_modern_tenants_never_see_msc_servers(rep_client: Client) -> None:
    body = rep_client.get(reverse("channels:overview")).content.decode()
    assert "MSC servers" not in body
    assert reverse("channels:legacy_select") not in body
    assert "Marketo email servers cannot send this sales email" in body
    assert "Sales Connect" not in body  # named nowhere else in the product


def test_a_crafted_post_selecting_msc_servers_is_refused_and_saves_nothing(
    rep_client: Client, rep_user: User
) -> None:
    response = rep_client.post(reverse("channels:legacy_select"))
    assert response.status_code == 403
    assert not Channel.objects.filter(kind=ChannelKind.MSC_LEGACY).exists()
    assert not ChannelAuditEvent.objects.exists()


def test_legacy_tenants_see_and_can_select_msc_servers(
    outsider_client: Client, outsider_user: User
) -> None:
    body = outsider_client.get(reverse("channels:overview")).content.decode()
    assert "MSC servers (legacy)" in body and "not signed with DKIM" in body
    response = outsider_client.post(reverse("channels:legacy_select"))
    assert response.status_code == 302
    channel = Channel.objects.get(owner=outsider_user, kind=ChannelKind.MSC_LEGACY)
    assert ChannelAuditEvent.objects.filter(channel=channel, action="created").exists()
    # Its bounces are mostly never seen: the section says so once it is chosen.
    body = outsider_client.get(reverse("channels:overview")).content.decode()
    assert "Bounce tracking is limited:" in body and "report no bounces" in body


def test_choosing_msc_servers_shows_them_in_the_routing_table_at_once(
    outsider_client: Client, outsider_user: User, globex: Tenant
) -> None:
    from channels.models import Identity

    own = channel_save_smtp(
        tenant=globex,
        actor=outsider_user,
        owner=outsider_user,
        config=SmtpConfig(host="localhost", port=2525, username="u", sending_domain="globex.test"),
        password="p",
    )
    default = channel_services.identity_ensure_default(user=outsider_user, tenant=globex)
    default.refresh_from_db()
    assert default.channel == own  # the first channel went to the identity
    response = outsider_client.post(reverse("channels:legacy_select"), follow=True)
    body = response.content.decode()
    assert "now goes through the MSC servers (legacy)" in body
    msc = Channel.objects.get(owner=outsider_user, kind=ChannelKind.MSC_LEGACY)
    assert set(Identity.objects.filter(user=outsider_user).values_list("channel", flat=True)) == {
        msc.pk
    }
    # The routing table is in the Identities section: read it right after the choice.
    body = outsider_client.get(
        reverse("channels:overview") + "?section=identities"
    ).content.decode()
    routing = body[body.index('id="routing"') :]
    row = routing[routing.index(f"Web app as {default.email}") :]
    row = row[: row.index("</tr>")]
    assert '<td data-label="Channel">MSC servers (legacy)</td>' in row


def test_choosing_msc_servers_again_after_a_move_brings_the_channel_back(
    outsider_client: Client, outsider_user: User, globex: Tenant
) -> None:
    from channels.models import ChannelStatus
    from tests.sending.conftest import queue_message

    msc = channel_services.channel_select_legacy(
        tenant=globex, actor=outsider_user, owner=outsider_user
    )
    Channel.objects.filter(pk=msc.pk).update(status=ChannelStatus.DISABLED, status_message="x")
    outsider_client.post(reverse("channels:legacy_select"))
    msc.refresh_from_db()
    assert (msc.status, msc.status_message) == (ChannelStatus.ACTIVE, "")
    identity = channel_services.identity_ensure_default(user=outsider_user, tenant=globex)
    identity.refresh_from_db()
    assert identity.channel == msc
    assert queue_message(globex, outsider_user, identity).channel == msc


# --- the custom SMTP form -----------------------------------------------------------------


def test_credentials_need_a_recent_password_confirmation(
    rep_client: Client, rep_user: User
) -> None:
    response = rep_client.get(reverse("channels:smtp_edit"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    response = rep_client.post(reverse("channels:smtp_edit"), SMTP_POST, follow=True)
    assert b"confirm your password first" in response.content
    assert not Channel.objects.exists()
    # The POST was not stashed for replay: the password never reached the session.
    assert "SG.the-real-key" not in str(dict(rep_client.session))


def test_saving_smtp_seals_the_password_and_audits_without_it(
    fresh_rep_client: Client, rep_user: User
) -> None:
    response = fresh_rep_client.post(reverse("channels:smtp_edit"), SMTP_POST)
    assert response.status_code == 302
    channel = Channel.objects.get(owner=rep_user, kind=ChannelKind.CUSTOM_SMTP)
    assert channel.smtp.host == "localhost" and channel.smtp.username == "apikey"
    assert channel.secret.startswith("enc1:") and "SG.the-real-key" not in channel.secret
    assert channel.read_secret() == {"password": "SG.the-real-key"}
    event = ChannelAuditEvent.objects.get(channel=channel)
    assert event.actor == rep_user and event.action == "created"
    assert "SG.the-real-key" not in str(event.changes)
    assert event.changes["password"].startswith("changed")


def test_the_password_is_write_only_and_blank_keeps_it(
    fresh_rep_client: Client, rep_user: User
) -> None:
    fresh_rep_client.post(reverse("channels:smtp_edit"), SMTP_POST)
    page = fresh_rep_client.get(reverse("channels:smtp_edit")).content.decode()
    assert "SG.the-real-key" not in page
    assert "Stored. Leave blank to keep it." in page
    fresh_rep_client.post(
        reverse("channels:smtp_edit"), {**SMTP_POST, "password": "", "username": "other"}
    )
    channel = Channel.objects.get(owner=rep_user)
    assert channel.smtp.username == "other"
    assert channel.read_secret() == {"password": "SG.the-real-key"}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"host": "smtp.gmail.com"}, "host", "Connect it through"),
        ({"host": "smtp.office365.com"}, "host", "Email Connection"),
        ({"host": "https://smtp.sendgrid.net"}, "host", "without a scheme"),
        ({"port": "465"}, "security", "Port 465 speaks TLS from the first byte"),
        ({"port": "99999"}, "port", "less than or equal to 65535"),
        ({"password": ""}, "password", "Enter the password"),
        ({"sending_domain": "not a domain"}, "sending_domain", "Enter a domain"),
        ({"security": "none"}, "security", "Select a valid choice"),
    ],
)
def test_bad_smtp_values_are_explained_and_nothing_is_saved(
    fresh_rep_client: Client, change: dict[str, str], field: str, message: str
) -> None:
    response = fresh_rep_client.post(reverse("channels:smtp_edit"), {**SMTP_POST, **change})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Channel.objects.exists()
    # What was typed is kept (except the password).
    if "host" not in change:
        assert 'value="localhost"' in response.content.decode()


def test_the_guard_applies_when_saving(fresh_rep_client: Client, settings) -> None:
    settings.MSC_OUTBOUND_ALLOW_PRIVATE = False
    response = fresh_rep_client.post(reverse("channels:smtp_edit"), SMTP_POST)
    assert response.status_code == 400
    assert "not a public internet address" in response.content.decode()


# --- test connection and test email through the pages ------------------------------------


def test_admin_tests_the_team_channel_with_htmx(
    fresh_admin_client: Client, acme: Tenant, admin_user: User, certs: Certificates
) -> None:
    with smtp_server(mode="starttls", cert=certs.trusted, users={"alice": "right"}) as server:
        channel = _team_channel(acme, admin_user, port=server.port)
        response = fresh_admin_client.post(
            reverse("channels:test", args=[channel.pk]), HTTP_HX_REQUEST="true"
        )
    body = response.content.decode()
    assert response.status_code == 200 and response["HX-Trigger"] == "channel-tested"
    assert "<html" not in body
    assert "Connection, TLS and authentication succeeded." in body
    channel.refresh_from_db()
    assert channel.last_test_ok is True


def test_a_failed_login_marks_the_channel_and_offers_reauthentication(
    fresh_admin_client: Client, acme: Tenant, admin_user: User, certs: Certificates
) -> None:
    with smtp_server(mode="starttls", cert=certs.trusted, users={"alice": "right"}) as server:
        channel = _team_channel(acme, admin_user, port=server.port, password="wrong")
        response = fresh_admin_client.post(
            reverse("channels:test", args=[channel.pk]), HTTP_HX_REQUEST="true"
        )
    assert "Authentication unsuccessful (535 5.7.8" in response.content.decode()
    channel.refresh_from_db()
    assert channel.status == "needs_attention"
    page = fresh_admin_client.get(reverse("channels:team")).content.decode()
    assert "Re-authenticate and save" in page
    # Saving a new password puts it back in service.
    fresh_admin_client.post(
        reverse("channels:team_smtp_edit"),
        {
            **SMTP_POST,
            "port": str(channel.smtp.port),
            "username": "alice",
            "password": "right",
            "use_for_all_members": "on",
        },
    )
    channel.refresh_from_db()
    assert channel.status == "active" and channel.read_secret() == {"password": "right"}


def test_send_test_email_delivers_one_message(
    fresh_admin_client: Client, acme: Tenant, admin_user: User, certs: Certificates
) -> None:
    with smtp_server(mode="starttls", cert=certs.trusted, users={"alice": "right"}) as server:
        channel = _team_channel(acme, admin_user, port=server.port)
        response = fresh_admin_client.post(
            reverse("channels:test_email", args=[channel.pk]),
            {"to": "someone@example.test"},
            HTTP_HX_REQUEST="true",
        )
    assert "Test email accepted by the server for someone@example.test" in response.content.decode()
    assert len(server.received.messages) == 1
    assert server.received.messages[0]["to"] == ["someone@example.test"]
    assert b"msc-admin test email" in server.received.messages[0]["data"]


def test_send_test_email_needs_a_valid_address(
    fresh_admin_client: Client, acme: Tenant, admin_user: User
) -> None:
    channel = _team_channel(acme, admin_user)
    response = fresh_admin_client.post(
        reverse("channels:test_email", args=[channel.pk]), {"to": "nope"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400
    assert "Enter a valid email address" in response.content.decode()


@pytest.mark.django_db(transaction=True)  # autocommit, as production serves each request
def test_without_javascript_the_test_email_lands_back_on_the_card_with_its_result(
    fresh_admin_client: Client, acme: Tenant, admin_user: User, certs: Certificates
) -> None:
    with smtp_server(mode="starttls", cert=certs.trusted, users={"alice": "right"}) as server:
        channel = _team_channel(acme, admin_user, port=server.port)
        url = reverse("channels:test_email", args=[channel.pk])
        response = fresh_admin_client.post(url, {"to": "someone@example.test"}, follow=True)
    assert response.redirect_chain == [(reverse("channels:team"), 302)]
    page = response.content.decode()
    assert "Test email accepted by the server for someone@example.test" in page
    assert len(server.received.messages) == 1
    # A bad address: back too, saying what is wrong, and nothing is sent.
    response = fresh_admin_client.post(url, {"to": "nope"}, follow=True)
    assert response.redirect_chain == [(reverse("channels:team"), 302)]
    assert "Enter a valid email address" in response.content.decode()
    assert len(server.received.messages) == 1


# --- team settings ------------------------------------------------------------------------


def test_throttling_is_validated_and_saved(fresh_admin_client: Client, acme: Tenant) -> None:
    bad = fresh_admin_client.post(
        reverse("channels:throttling"), {"batch_size": "0", "wait_seconds": "45"}
    )
    assert bad.status_code == 400 and "greater than or equal to 1" in bad.content.decode()
    fresh_admin_client.post(
        reverse("channels:throttling"),
        {"throttling_enabled": "on", "batch_size": "30", "wait_seconds": "60"},
    )
    acme.sending.refresh_from_db()
    assert (acme.sending.batch_size, acme.sending.wait_seconds) == (30, 60)
    assert ChannelAuditEvent.objects.filter(subject="Email Connection throttling").exists()


def test_blocked_domains_are_normalised_listed_and_removed(
    fresh_admin_client: Client, acme: Tenant
) -> None:
    fresh_admin_client.post(reverse("channels:blocked_add"), {"domain": "@Competitor.COM"})
    blocked = acme.blocked_domains.get()
    assert blocked.domain == "competitor.com"
    assert b"competitor.com" in fresh_admin_client.get(reverse("channels:team")).content
    bad = fresh_admin_client.post(reverse("channels:blocked_add"), {"domain": "not a domain"})
    assert bad.status_code == 400
    fresh_admin_client.post(reverse("channels:blocked_remove", args=[blocked.pk]))
    assert not acme.blocked_domains.exists()


def test_the_audit_log_lists_changes_for_admins(
    fresh_admin_client: Client, acme: Tenant, admin_user: User
) -> None:
    _team_channel(acme, admin_user, password="unique-secret-4711")
    page = fresh_admin_client.get(reverse("channels:audit")).content.decode()
    assert "created: Team channel: Custom SMTP" in page
    assert "admin@acme.test" in page
    assert "unique-secret-4711" not in page


def test_exchange_hybrid_is_refused_with_an_explanation(fresh_rep_client: Client) -> None:
    response = fresh_rep_client.post(
        reverse("channels:exchange_edit"),
        {
            "deployment": "hybrid",
            "autodiscover": "on",
            "email": "r@acme.test",
            "username": "r",
            "password": "p",
        },
    )
    assert response.status_code == 400
    assert "Exchange Hybrid is not supported" in response.content.decode()
    assert not Channel.objects.exists()
    # The typed password is not sent back: the form says to type it again.
    assert "Type the password again" in response.content.decode()
    assert 'value="p"' not in response.content.decode()


def test_exchange_on_premises_is_saved(fresh_rep_client: Client, rep_user: User) -> None:
    response = fresh_rep_client.post(
        reverse("channels:exchange_edit"),
        {
            "deployment": "onprem",
            "server_url": "https://mail.acme.test/EWS/Exchange.asmx",
            "email": "rep@acme.test",
            "username": "ACME\\rep",
            "password": "pw",
            "daily_limit": "800",
        },
    )
    assert response.status_code == 302
    channel = Channel.objects.get(owner=rep_user, kind=ChannelKind.EXCHANGE_ONPREM)
    assert channel.exchange.daily_limit == 800 and channel.read_secret() == {"password": "pw"}
    page = fresh_rep_client.get(reverse("channels:overview")).content.decode()
    assert "the Inbox and Junk Email are read through EWS" in page

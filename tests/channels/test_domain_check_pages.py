"""Sending-domain checks as stored and shown: after a save, daily, on demand (Check DNS now),
on the team card, Delivery channels and the home page, for tenant admins only."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from channels import services, tasks
from channels.domaincheck.services import sending_domains_check
from channels.kinds import SmtpConfig
from channels.models import Channel, DomainCheckState, MscServer, SendingDomainCheck
from msc_admin.stored import read
from tests.channels.test_domain_check import ZONE
from tests.dnsserver import DnsServer, dns_server
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def zone(settings) -> Iterator[DnsServer]:
    with dns_server(copy.deepcopy(ZONE)) as server:
        settings.MSC_DNS_NAMESERVERS = [server.address]
        settings.MSC_DNS_TIMEOUT = 1
        yield server


def save_team_channel(tenant: Tenant, actor: User, domain: str = "acme.test") -> Channel:
    return services.channel_save_smtp(
        tenant=tenant,
        actor=actor,
        owner=None,
        config=SmtpConfig(
            host="smtp.sendgrid.net", username="apikey", sending_domain=domain, port=587
        ),
        password="SG.secret",
        use_for_all_members=True,
    )


def test_saving_a_channel_checks_its_domain(
    zone: DnsServer, acme: Tenant, admin_user: User
) -> None:
    channel = save_team_channel(acme, admin_user)
    row = SendingDomainCheck.objects.get(channel=channel)
    assert (row.domain, row.state, row.tenant_id) == ("acme.test", DomainCheckState.PASS, acme.pk)
    assert [line["state"] for line in row.checks] == ["pass"] * 4
    assert row.checked_at is not None


def test_an_identity_added_on_the_channel_gets_its_domain_checked(
    zone: DnsServer, acme: Tenant, admin_user: User
) -> None:
    channel = save_team_channel(acme, admin_user)
    services.identity_add(
        tenant=acme, user=admin_user, email="ann@sales.acme.test", name="Ann", base_url="http://x"
    )
    domains = set(SendingDomainCheck.objects.filter(channel=channel).values_list("domain", "state"))
    # sales.acme.test has no records at all: no SPF is a fail.
    assert domains == {("acme.test", "pass"), ("sales.acme.test", "fail")}


def test_a_time_out_or_servfail_keeps_the_last_definite_result(
    zone: DnsServer, acme: Tenant, admin_user: User
) -> None:
    channel = save_team_channel(acme, admin_user)
    first = SendingDomainCheck.objects.get(channel=channel)
    zone.servfail.update({"acme.test", "_dmarc.acme.test", "s1._domainkey.acme.test"})
    zone.servfail.add("s2._domainkey.acme.test")
    (row,) = sending_domains_check(channel=channel)
    assert row.state == DomainCheckState.PASS  # not "fail", and not forgotten
    assert row.checked_at > first.checked_at
    for before, after in zip(first.checks, row.checks, strict=True):
        assert after["state"] == "pass"
        assert after["checked_at"] == before["checked_at"]  # the date of the answer shown
        assert read(after["retry_message"]).startswith("Could not check")
        assert after["retry_at"] == row.checked_at.isoformat()
    # With nothing definite before, it is "could not check".
    SendingDomainCheck.objects.filter(channel=channel).delete()
    (row,) = sending_domains_check(channel=channel)
    assert row.state == DomainCheckState.UNKNOWN
    assert {line["state"] for line in row.checks} == {"unknown"}


def test_the_daily_task_rechecks_only_rows_a_day_old(
    zone: DnsServer, acme: Tenant, globex: Tenant, admin_user: User, outsider_user: User
) -> None:
    stale = save_team_channel(acme, admin_user)
    fresh = save_team_channel(globex, outsider_user, domain="globex.test")
    long_ago = timezone.now() - timedelta(hours=25)
    recently = timezone.now() - timedelta(hours=2)
    SendingDomainCheck.objects.filter(channel=stale).update(checked_at=long_ago)
    SendingDomainCheck.objects.filter(channel=fresh).update(checked_at=recently)
    zone.queries.clear()
    tasks.recheck_sending_domains.delay()
    assert SendingDomainCheck.objects.get(channel=stale).checked_at > recently
    assert SendingDomainCheck.objects.get(channel=fresh).checked_at == recently
    asked = {name for name, _ in zone.queries}
    assert "acme.test" in asked and "globex.test" not in asked


# --- Check DNS now ------------------------------------------------------------------------------


def _check_now(client: Client, channel: Channel, **data: str) -> object:
    return client.post(
        reverse("channels:domain_check", args=[channel.pk]), data, HTTP_HX_REQUEST="true"
    )


def test_check_now_looks_up_again_and_answers_the_card(
    zone: DnsServer, acme: Tenant, admin_user: User, admin_client: Client
) -> None:
    zone.records.pop("_dmarc.acme.test")
    channel = save_team_channel(acme, admin_user)
    assert SendingDomainCheck.objects.get(channel=channel).state == DomainCheckState.WARN
    zone.records["_dmarc.acme.test"] = ['TXT "v=DMARC1; p=reject"']
    response = _check_now(admin_client, channel, domain="acme.test", selector="")
    assert response.status_code == 200
    assert response["HX-Trigger"] == "domains-checked"
    body = response.content.decode()
    assert body.lstrip().startswith(
        f'<div class="scan domain-checks" id="domain-checks-{channel.pk}"'
    )
    assert "<html" not in body
    assert "p=reject" in body
    assert SendingDomainCheck.objects.get(channel=channel).state == DomainCheckState.PASS


def test_check_now_is_rate_limited_per_domain(
    zone: DnsServer, acme: Tenant, admin_user: User, admin_client: Client
) -> None:
    channel = save_team_channel(acme, admin_user)
    assert _check_now(admin_client, channel, domain="acme.test").status_code == 200
    checked_at = SendingDomainCheck.objects.get(channel=channel).checked_at
    zone.queries.clear()
    response = _check_now(admin_client, channel, domain="acme.test")
    assert response.status_code == 200
    assert "Checked moments ago" in response.content.decode()
    assert zone.queries == []
    assert SendingDomainCheck.objects.get(channel=channel).checked_at == checked_at


def test_check_now_keeps_the_selector_the_admin_entered(
    zone: DnsServer, acme: Tenant, admin_user: User, admin_client: Client
) -> None:
    channel = save_team_channel(acme, admin_user)
    zone.records["mine._domainkey.acme.test"] = ['TXT "v=DKIM1; p="']
    zone.records.pop("s1._domainkey.acme.test")
    response = _check_now(admin_client, channel, domain="acme.test", selector="Mine._domainkey")
    assert response.status_code == 200
    row = SendingDomainCheck.objects.get(channel=channel)
    assert row.dkim_selector == "mine"
    dkim = next(line for line in row.checks if line["key"] == "dkim")
    assert dkim["state"] == "fail"
    assert "mine._domainkey.acme.test is revoked" in read(dkim["message"])
    # A bad selector is refused with a reason, and nothing changes.
    # (200 with the card: htmx swaps no 4xx answer, and the reason must replace the card.)
    bad = _check_now(admin_client, channel, domain="acme.test", selector="no spaces please")
    assert bad.status_code == 200
    assert "A DKIM selector is letters" in bad.content.decode()
    assert SendingDomainCheck.objects.get(channel=channel).dkim_selector == "mine"


def test_without_htmx_check_now_redirects_to_the_card(
    zone: DnsServer, acme: Tenant, admin_user: User, admin_client: Client
) -> None:
    channel = save_team_channel(acme, admin_user)
    response = admin_client.post(reverse("channels:domain_check", args=[channel.pk]), {})
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('channels:team')}#domain-checks-{channel.pk}"
    page = admin_client.get(response["Location"]).content.decode()
    assert "Checked the DNS of 1 sending domain: the result is on the card." in page
    assert f'id="domain-checks-{channel.pk}"' in page


def test_only_the_tenants_admins_may_check(
    zone: DnsServer, acme: Tenant, admin_user: User, rep_user: User, rep_client: Client
) -> None:
    channel = save_team_channel(acme, admin_user)
    url = reverse("channels:domain_check", args=[channel.pk])
    assert rep_client.post(url, {}, HTTP_HX_REQUEST="true").status_code == 403
    assert Client().post(url, {}).status_code == 302  # to sign in
    # Another member's own SMTP channel is not the admin's to look at.
    other = services.channel_save_smtp(
        tenant=acme,
        actor=rep_user,
        owner=rep_user,
        config=SmtpConfig(host="smtp.sendgrid.net", username="u", sending_domain="rep.test"),
        password="x",
    )
    before = list(SendingDomainCheck.objects.order_by("pk").values())
    admin = Client()
    admin.force_login(admin_user)
    assert _check_now(admin, other).status_code == 404
    assert admin.get(url).status_code == 405
    assert list(SendingDomainCheck.objects.order_by("pk").values()) == before


# --- where it shows ---------------------------------------------------------------------------


def test_a_missing_spf_shows_on_the_card_home_and_overview_for_admins_only(
    zone: DnsServer, acme: Tenant, admin_user: User, admin_client: Client, rep_client: Client
) -> None:
    zone.records["acme.test"] = ['TXT "v=spf1 include:_spf.google.com ~all"', "MX 10 mx."]
    channel = save_team_channel(acme, admin_user)
    row = SendingDomainCheck.objects.get(channel=channel)
    assert row.state == DomainCheckState.FAIL
    added = "v=spf1 include:_spf.google.com include:sendgrid.net ~all"
    card = admin_client.get(reverse("channels:team")).content.decode()
    assert f'id="domain-check-{row.pk}"' in card
    assert "does not authorise SendGrid: add include:sendgrid.net" in card
    assert f'readonly value="{added}"' in card
    # On Delivery channels the records are in the Team channel section (the others say so).
    for page in (reverse("home"), reverse("channels:overview") + "?section=team"):
        body = admin_client.get(page).content.decode()
        assert "acme.test&#x27;s SPF record does not authorise SendGrid" in body, page
        assert f"#domain-check-{row.pk}" in body
        assert added in body
        rep_body = rep_client.get(page).content.decode()
        assert "does not authorise SendGrid" not in rep_body, page
        assert "Sending domain" not in rep_body
    # Its other sections point an admin there in one line; a rep's do not.
    mine = admin_client.get(reverse("channels:overview")).content.decode()
    assert 'id="domain-notice"' in mine and "?section=team#domain-warnings-title" in mine
    assert added not in mine
    assert 'id="domain-notice"' not in rep_client.get(reverse("channels:overview")).content.decode()


def test_channels_sharing_a_domain_get_one_warning_naming_them(
    zone: DnsServer, acme: Tenant, admin_user: User, admin_client: Client
) -> None:
    zone.records["acme.test"] = ['TXT "v=spf1 include:_spf.google.com ~all"', "MX 10 mx."]
    team = save_team_channel(acme, admin_user)
    own = services.channel_save_smtp(
        tenant=acme,
        actor=admin_user,
        owner=admin_user,
        config=SmtpConfig(
            host="smtp.sendgrid.net", username="apikey", sending_domain="acme.test", port=587
        ),
        password="SG.secret",
    )
    assert SendingDomainCheck.objects.filter(domain="acme.test", state="fail").count() == 2
    for page in (reverse("home"), reverse("channels:overview") + "?section=team"):
        body = admin_client.get(page).content.decode()
        warnings = re.findall(r'<li class="domain-warning">(.*?)</li>', body, re.S)
        assert len(warnings) == 1, page
        assert "SPF record does not authorise SendGrid" in warnings[0]
        assert team.label in warnings[0] and own.label in warnings[0]
        assert "Sending domain to fix" in body


def test_a_passing_domain_adds_no_warning(
    zone: DnsServer, acme: Tenant, admin_user: User, admin_client: Client
) -> None:
    save_team_channel(acme, admin_user)
    assert "Sending domain" not in admin_client.get(reverse("home")).content.decode()


def test_a_second_admin_sees_the_team_channels_warning_not_anothers_own(
    zone: DnsServer, acme: Tenant, admin_user: User
) -> None:
    second = MembershipFactory(tenant=acme, role="admin", user__email="boss@acme.test").user
    services.channel_save_smtp(
        tenant=acme,
        actor=admin_user,
        owner=admin_user,
        config=SmtpConfig(host="smtp.sendgrid.net", username="u", sending_domain="own.test"),
        password="x",
    )
    client = Client()
    client.force_login(second)
    assert "own.test" not in client.get(reverse("home")).content.decode()


def test_staff_see_the_msc_pools_sending_domains_and_the_tenant_does_not(
    zone: DnsServer, globex: Tenant, outsider_user: User, staff_client: Client
) -> None:
    MscServer.objects.create(name="msc-1", host="relay.acme.test", username="u")
    channel = services.channel_select_legacy(
        tenant=globex, actor=outsider_user, owner=outsider_user
    )
    identity = services.identity_ensure_default(user=outsider_user, tenant=globex)
    services.identity_set_channel(identity=identity, channel=channel, actor=outsider_user)
    row = SendingDomainCheck.objects.get(channel=channel)
    assert row.domain == "globex.test"
    # No zone for globex.test: its SPF cannot cover the pool's server.
    assert row.state == DomainCheckState.FAIL
    page = staff_client.get(reverse("staff:tenant", args=[globex.pk])).content.decode()
    assert "Sending domains on MSC servers" in page
    assert f'id="domain-check-{row.pk}"' in page
    assert "globex.test has no SPF record" in page
    admin = Client()
    admin.force_login(outsider_user)
    for url in (reverse("home"), reverse("channels:overview")):
        assert "globex.test has no SPF record" not in admin.get(url).content.decode()


@pytest.mark.django_db(transaction=True)  # a request path: autocommit, as served
def test_a_rep_sees_and_rechecks_their_own_channels_domain(
    zone: DnsServer, acme: Tenant, rep_user: User, rep_client: Client
) -> None:
    zone.records["rep.test"] = ['TXT "v=spf1 include:_spf.google.com ~all"', "MX 10 mx."]
    own = services.channel_save_smtp(
        tenant=acme,
        actor=rep_user,
        owner=rep_user,
        config=SmtpConfig(host="smtp.sendgrid.net", username="u", sending_domain="rep.test"),
        password="x",
    )
    row = SendingDomainCheck.objects.get(channel=own, domain="rep.test")
    page = rep_client.get(reverse("channels:overview")).content.decode()
    assert f'id="domain-check-{row.pk}"' in page
    assert "does not authorise SendGrid: add include:sendgrid.net" in page
    before = row.checked_at
    response = _check_now(rep_client, own)
    assert response.status_code == 200
    row.refresh_from_db()
    assert row.checked_at is not None and before is not None and row.checked_at > before


def test_the_home_tiles_domain_figures_count_the_domains_it_warns_of(
    zone: DnsServer, acme: Tenant, admin_user: User, rep_user: User, admin_client: Client
) -> None:
    save_team_channel(acme, admin_user)  # passes
    zone.records["rep.test"] = ['TXT "v=spf1 include:_spf.google.com ~all"', "MX 10 mx."]
    services.channel_save_smtp(  # a rep's own channel, whose domain fails
        tenant=acme,
        actor=rep_user,
        owner=rep_user,
        config=SmtpConfig(host="smtp.sendgrid.net", username="u", sending_domain="rep.test"),
        password="x",
    )
    assert SendingDomainCheck.objects.filter(domain="rep.test", state="fail").count() == 1
    body = admin_client.get(reverse("home")).content.decode()
    figures = re.search(r'data-figure="domains">(.*?)·', body, re.S)
    assert figures is not None
    # The admin is warned of the team's domains and their own: the figures count the same.
    assert " ".join(figures.group(1).split()) == (
        "Sending-domain checks: 1 pass, 0 warnings, 0 fail"
    )
    assert "Sending domain to fix" not in body and "rep.test" not in body
    # Once one of theirs fails, the figures and the warning say so together.
    zone.records["acme.test"] = ['TXT "v=spf1 include:_spf.google.com ~all"', "MX 10 mx."]
    save_team_channel(acme, admin_user)
    body = admin_client.get(reverse("home")).content.decode()
    figures = re.search(r'data-figure="domains">(.*?)·', body, re.S)
    assert figures is not None
    assert " ".join(figures.group(1).split()) == (
        "Sending-domain checks: 0 pass, 0 warnings, 1 fail"
    )
    assert len(re.findall(r'<li class="domain-warning">', body)) == 1

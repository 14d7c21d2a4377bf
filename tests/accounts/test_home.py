"""The overview home per role: each tile's figures equal the database, each is a link to where
it comes from, a rep sees only their own mail, an admin only their tenant's, and the page's
queries do not grow with the data. Autocommit, as production serves the page."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.db.models import Sum
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from analytics import rollups
from analytics.models import DomainRollup, Rollup, TeamRollup
from bounces import services as bounces
from bounces.models import InboxCursor
from channels.kinds import ChannelKind
from channels.models import Channel, ChannelStatus, Identity
from channels.services import identity_ensure_default
from sending import pipeline
from sending.models import (
    DomainCapSlot,
    Hold,
    Message,
    MessageStatus,
    QuotaSlot,
    Suppression,
    SuppressionReason,
)
from tests.bounces.conftest import dsn_for
from tests.factories import MembershipFactory
from tests.mailservers import SmtpServer
from tests.sending.conftest import (  # noqa: F401 - relay is a fixture
    RELAY_PASSWORD,
    gmail_channel,
    queue_message,
    relay,
    relay_config,
)

pytestmark = pytest.mark.django_db(transaction=True)  # autocommit, as production serves "/"


def figure(page: str, name: str) -> str:
    """The text of the element marked ``data-figure="name"``, tags stripped."""
    found = re.search(rf'data-figure="{re.escape(name)}"[^>]*>(.*?)</(?:a|span|strong|p)>', page)
    assert found, f"no figure {name!r} on the page"
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def number(page: str, name: str) -> float:
    found = re.search(r"\d+(?:\.\d+)?", figure(page, name).replace(",", ""))
    assert found, f"figure {name!r} has no number: {figure(page, name)!r}"
    return float(found.group())


def attention_items(page: str) -> dict[str, str]:
    return {
        key: re.sub(r"<[^>]+>", "", text).strip()
        for key, text in re.findall(r'data-attention="([\w-]+)"><a [^>]*>(.*?)</a>', page)
    }


def _send(tenant: Tenant, user: User, identity: Identity, n: int, prefix: str) -> list[Message]:
    sent = []
    for k in range(n):
        # In autocommit its task runs (in-process) as soon as it is queued.
        message = queue_message(tenant, user, identity, to=f"{prefix}{k}@prospect.test")
        message.refresh_from_db()
        if message.status != MessageStatus.SENT:
            assert pipeline.send_message(message.pk) == "sent"
            message.refresh_from_db()
        sent.append(message)
    return sent


@pytest.fixture
def team_smtp(acme: Tenant, admin_user: User, relay: SmtpServer) -> Channel:  # noqa: F811
    from channels import services as channel_services

    return channel_services.channel_save_smtp(
        tenant=acme,
        actor=admin_user,
        owner=None,
        config=relay_config(relay, per_day=100),
        password=RELAY_PASSWORD,
        use_for_all_members=True,
    )


@pytest.fixture
def mail(acme: Tenant, admin_user: User, rep_user: User, team_smtp: Channel) -> dict:
    """The rep sends 3 (one bounces), a colleague 2, all through the team channel today."""
    other = MembershipFactory(tenant=acme, user__email="other@acme.test").user
    rep_mail = _send(acme, rep_user, identity_ensure_default(user=rep_user, tenant=acme), 3, "r")
    other_mail = _send(acme, other, identity_ensure_default(user=other, tenant=acme), 2, "o")
    bounces.ingest(tenant=acme, raw=dsn_for(rep_mail[0], own_id="<home-a@m>"))
    return {"rep": rep_mail, "other": other_mail, "colleague": other}


def test_admin_sees_todays_sends_against_the_channels_daily_limit(
    admin_client: Client, acme: Tenant, globex: Tenant, mail: dict, team_smtp: Channel
) -> None:
    # Another tenant's mail today is none of Acme's business.
    other = MembershipFactory(tenant=globex, user__email="x@globex.test").user
    Rollup.objects.create(tenant=globex, day=timezone.localdate(), sender=other, sent=40)
    TeamRollup.objects.create(tenant=globex, day=timezone.localdate(), sent=40)
    page = admin_client.get(reverse("home")).content.decode()
    today = Rollup.objects.filter(tenant=acme, day=timezone.localdate()).aggregate(n=Sum("sent"))
    assert number(page, "sent-today") == today["n"] == 5
    # Its link opens today's figures, where the same number is the total.
    day = timezone.localdate().isoformat()
    assert f"range=custom&amp;start={day}&amp;end={day}" in page
    assert "Team limit: 100 in 24 hours" in page
    slots = QuotaSlot.objects.filter(channel=team_smtp, rule="day").count()
    assert number(page, f"limit-channel-{team_smtp.pk}-day") == slots == 5
    assert "5</strong> of 100 used (5 %)" in page
    assert f'href="/outbox/sent/?scope=team&amp;channel={team_smtp.pk}"' in page


def test_admin_sees_a_receiving_domain_limit_against_todays_sends(
    admin_client: Client, acme: Tenant, admin_user: User, mail: dict
) -> None:
    from channels.services import domain_cap_add

    cap = domain_cap_add(
        tenant=acme,
        actor=admin_user,
        limit=50,
        period="day",
        provider="",
        domains=["prospect.test"],
    )
    page = admin_client.get(reverse("home")).content.decode()
    slots = DomainCapSlot.objects.filter(cap=cap).count()
    assert number(page, f"limit-cap-{cap.pk}") == slots == 5  # the mail sent before it counts
    assert "At most 50 a day to prospect.test" in page


def test_admin_sees_each_channels_health(
    admin_client: Client, acme: Tenant, rep_user: User, team_smtp: Channel
) -> None:
    paused = gmail_channel(acme, rep_user)
    Channel.objects.filter(pk=paused.pk).update(
        status=ChannelStatus.PAUSED, status_message="Bounce spike: 40 % of the last hour"
    )
    colleague = MembershipFactory(tenant=acme, user__email="c@acme.test").user
    backed_off = gmail_channel(acme, colleague)
    Channel.objects.filter(pk=backed_off.pk).update(
        backoff_until=timezone.now() + timedelta(minutes=30),
        backoff_reason="Gmail asked us to slow down (421 4.7.0)",
    )
    page = admin_client.get(reverse("home")).content.decode()
    live = Channel.objects.filter(tenant=acme).exclude(status=ChannelStatus.DISABLED)
    assert number(page, "paused") == live.filter(status=ChannelStatus.PAUSED).count() == 1
    assert number(page, "backed-off") == 1
    assert number(page, "connected") == 1  # the team channel
    assert number(page, "attention") == 0
    # A channel whose connection test failed needs a look, and is not counted connected.
    Channel.objects.filter(pk=team_smtp.pk).update(last_test_ok=False)
    again = admin_client.get(reverse("home")).content.decode()
    assert (number(again, "connected"), number(again, "attention")) == (0, 1)
    assert "Paused: bounce spike" in page and "Backed off until" in page
    assert "Gmail asked us to slow down (421 4.7.0)" in page
    assert "sign-in token valid until" in page  # the Gmail channels' token
    items = attention_items(page)
    assert items["paused-channels"].startswith("1 channel paused")


def test_admin_sees_bounce_and_complaint_rates_with_top_reasons_and_domains(
    admin_client: Client, acme: Tenant, mail: dict
) -> None:
    page = admin_client.get(reverse("home")).content.decode()
    week = Rollup.objects.filter(tenant=acme).aggregate(
        sent=Sum("sent"), hard=Sum("hard"), soft=Sum("soft"), complained=Sum("complained")
    )
    assert number(page, "sent-7") == week["sent"] == 5
    assert number(page, "bounce-rate-7") == round(100 * (week["hard"] + week["soft"]) / 5, 1)
    assert number(page, "bounce-rate-7") == 20.0
    assert number(page, "complaint-rate-30") == 0.0
    assert number(page, "reason-userunknown") == 1
    assert number(page, "domain-prospect.test") == 1
    # Its sent mail in the range, days without a bounce included (as on the page it links to):
    # a colleague's four, three days ago, counted as a send counts them.
    sent_at = timezone.now() - timedelta(days=3)
    for _ in range(4):
        rollups.count_sent(
            SimpleNamespace(
                tenant_id=acme.pk,
                sender_id=mail["colleague"].pk,
                template_id=None,
                campaign_step_id=None,
                channel_id=None,
                to_domain="prospect.test",
                sent_at=sent_at,
            ),
            sent_at,
        )
    page = admin_client.get(reverse("home")).content.decode()
    sent = DomainRollup.objects.filter(tenant=acme, domain="prospect.test").aggregate(n=Sum("sent"))
    assert number(page, "domain-sent-prospect.test") == sent["n"] == 9
    assert "Mailbox does not exist" in page or "reason" in page
    # The trend: each of the last 14 days is a bar whose value is in its title.
    assert page.count("<rect ") == 14
    assert "1 of 5 bounced" in page


def test_a_rep_sees_only_their_own_week_queue_and_channel(
    rep_client: Client, acme: Tenant, rep_user: User, mail: dict, team_smtp: Channel
) -> None:
    identity = identity_ensure_default(user=rep_user, tenant=acme)
    later = timezone.now() + timedelta(minutes=20)
    waiting = [
        queue_message(acme, rep_user, identity, to=f"q{k}@prospect.test", send_at=later)
        for k in range(3)
    ]
    # Two of them are in the queue, one held by the team's throttling until ``later``, as the
    # pipeline leaves them; the third stays scheduled.
    Message.objects.filter(pk=waiting[0].pk).update(
        status=MessageStatus.QUEUED, hold=Hold.THROTTLE, next_attempt_at=later
    )
    Message.objects.filter(pk=waiting[1].pk).update(
        status=MessageStatus.QUEUED, next_attempt_at=later
    )
    # A colleague's waiting mail is not the rep's.
    colleague = mail["colleague"]
    theirs = identity_ensure_default(user=colleague, tenant=acme)
    queue_message(acme, colleague, theirs, to="z@prospect.test", send_at=later)
    page = rep_client.get(reverse("home")).content.decode()

    mine = Rollup.objects.filter(tenant=acme, sender=rep_user).aggregate(
        sent=Sum("sent"), hard=Sum("hard"), soft=Sum("soft")
    )
    assert number(page, "sent-7") == mine["sent"] == 3
    assert number(page, "bounced-7") == mine["hard"] + mine["soft"] == 1
    assert number(page, "complained-7") == 0
    assert number(page, "replied-7") == 0
    queued = Message.objects.filter(
        sender=rep_user, status__in=[MessageStatus.QUEUED, MessageStatus.SENDING]
    ).count()
    assert number(page, "queued") == queued == 2
    assert number(page, "scheduled") == 1
    assert 'data-hold="throttle"' in page and "Throttling" in page
    assert timezone.localtime(later).strftime("%H:%M") in page
    assert "Team channel: Custom SMTP" in page or team_smtp.label in page
    assert ">Your channel</h2>" in page  # one channel: the team's
    gmail_channel(acme, rep_user)
    assert ">Your channels</h2>" in rep_client.get(reverse("home")).content.decode()
    # None of the admin's tiles, nor the team's figures.
    assert 'id="tile-today"' not in page and 'id="tile-rates"' not in page
    assert 'id="tile-attention"' not in page


def test_the_attention_list_counts_todays_suppressions_unverified_addresses_and_failing_scans(
    admin_client: Client, acme: Tenant, globex: Tenant, rep_user: User, team_smtp: Channel
) -> None:
    midnight = timezone.make_aware(
        timezone.datetime.combine(timezone.localdate(), timezone.datetime.min.time())
    )
    for address, when in [
        ("a@x.test", timezone.now()),
        ("b@x.test", max(midnight, timezone.now() - timedelta(minutes=1))),
        ("old@x.test", midnight - timedelta(minutes=1)),
    ]:
        Suppression.objects.create(
            tenant=acme, address=address, reason=SuppressionReason.MANUAL, created_at=when
        )
    Suppression.objects.create(tenant=globex, address="g@x.test", reason=SuppressionReason.MANUAL)
    Identity.objects.create(tenant=acme, user=rep_user, email="alias@acme.test", name="Alias")
    gmail = gmail_channel(acme, rep_user)
    # Read through the Gmail API: its Inbox and Spam both failed; one inbox all the same.
    InboxCursor.objects.create(tenant=acme, channel=gmail, ok=False, message="refused")
    InboxCursor.objects.create(tenant=acme, channel=gmail, folder="SPAM", ok=False)

    page = admin_client.get(reverse("home")).content.decode()
    items = attention_items(page)
    assert items["suppressions-today"].startswith("2 addresses added to Suppressions today")
    unverified = Identity.objects.filter(tenant=acme, verified_at__isnull=True).count()
    assert items["unverified-identities"].startswith(f"{unverified} sending address")
    assert items["failing-scans"].startswith("1 inbox could not be read")
    assert "nothing-to-do" not in page


def test_an_admin_with_nothing_to_look_at_is_told_so(admin_client: Client, acme: Tenant) -> None:
    page = admin_client.get(reverse("home")).content.decode()
    assert 'id="nothing-to-do"' in page
    assert "No channel yet" in page  # the channels tile's next step
    assert "Nothing sent in the last 30 days" in page


def test_a_legacy_tenants_admin_sees_who_still_sends_through_msc_servers(
    outsider_client: Client, globex: Tenant, outsider_user: User
) -> None:
    rep = MembershipFactory(tenant=globex, user__email="r@globex.test").user
    Channel.objects.create(tenant=globex, owner=rep, kind=ChannelKind.MSC_LEGACY)
    page = outsider_client.get(reverse("home")).content.decode()
    assert attention_items(page)["legacy-people"].startswith("1 person still sends through MSC")


def _queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(reverse("home")).status_code == 200
    return len(captured)


def test_the_home_pages_queries_do_not_grow_with_channels_or_mail(
    admin_client: Client, rep_client: Client, acme: Tenant, rep_user: User, mail: dict
) -> None:
    before = {"admin": _queries(admin_client), "rep": _queries(rep_client)}
    identity = identity_ensure_default(user=rep_user, tenant=acme)
    for k in range(30):
        member = MembershipFactory(tenant=acme, user__email=f"m{k}@acme.test").user
        channel = gmail_channel(acme, member)
        if k % 3 == 0:
            Channel.objects.filter(pk=channel.pk).update(status=ChannelStatus.PAUSED)
        Suppression.objects.create(tenant=acme, address=f"s{k}@x.test", reason="manual")
    later = timezone.now() + timedelta(hours=1)
    for k in range(50):
        queue_message(acme, rep_user, identity, to=f"more{k}@other{k % 7}.test", send_at=later)
    _send(acme, rep_user, identity, 5, "again")
    after = {"admin": _queries(admin_client), "rep": _queries(rep_client)}
    assert after == before
    # Both: session, user, membership with its tenant. Admin: the TOTP check (MFA), channels'
    # tile (worst channels, domain checks' counts, counts by state), sending's (today's
    # roll-up, channels, team throttling, domain caps, the rolling windows' slots), analytics'
    # (top reasons, top domains and their sent mail, 30 days by day), the attention list
    # (unverified identities, suppressions today, failing scans, a legacy migration?) and the
    # domain warnings. Rep: their channels, their queue by hold, their 30 days by day, their
    # failing scans.
    assert before == {"admin": 21, "rep": 7}


@pytest.mark.parametrize("persona", ["admin", "rep"])
def test_every_link_on_the_home_page_opens_for_its_reader(
    persona: str,
    admin_client: Client,
    rep_client: Client,
    acme: Tenant,
    rep_user: User,
    mail: dict,
    team_smtp: Channel,
) -> None:
    """Each figure is a link to where it comes from, and that page opens for whoever reads
    it: a rep's paused or team channel leads to Delivery channels, not to admins' pages."""
    Channel.objects.filter(pk=team_smtp.pk).update(status=ChannelStatus.PAUSED)
    gmail_channel(acme, rep_user)
    client = admin_client if persona == "admin" else rep_client
    page = client.get(reverse("home")).content.decode()
    links = set(re.findall(r'href="(/[^"#]*)', page)) - {"/accounts/logout/"}
    assert len(links) > 5
    for link in sorted(links):
        response = client.get(link.replace("&amp;", "&"))
        assert response.status_code < 400, (link, response.status_code)

"""The overview home of each demo persona, in a real browser: every tile's figure, as the
person reads it, equals a count taken from the database here."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from accounts.demo import DEMO_PASSWORD
from accounts.models import Tenant, User
from analytics.models import DomainRollup, ReasonRollup, Rollup
from bounces.models import BounceSpike, InboxCursor
from channels import kinds
from channels.models import Channel, ChannelStatus, Identity, MscServer, SendingDomainCheck
from msc_admin.humanize import percent_of
from sending.models import Message, MessageStatus, QuotaSlot, Suppression
from staff.models import LegacyMigration

pytestmark = pytest.mark.browser


@pytest.fixture
def demo(live_url: str, settings) -> str:
    settings.MSC_REQUIRE_MFA = False  # as bin/run serves the demo
    call_command("seed_demo", force=True)
    return live_url


def _sign_in(page, live_url: str, email: str) -> None:
    page.goto(f"{live_url}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert "/accounts/login/" not in page.url, f"could not sign in as {email}"


def shown(page, name: str) -> float:
    """The number in the element marked ``data-figure="name"``, as the browser renders it."""
    text = page.locator(f'[data-figure="{name}"]').inner_text()
    found = re.search(r"\d+(?:\.\d+)?", text.replace(",", ""))
    assert found, f"{name}: {text!r}"
    return float(found.group())


def _sums(rows) -> dict[str, int]:
    found = rows.aggregate(
        sent=Sum("sent"),
        hard=Sum("hard"),
        soft=Sum("soft"),
        complained=Sum("complained"),
        replied=Sum("replied"),
    )
    return {key: value or 0 for key, value in found.items()}


def rate(page, name: str) -> str:
    return page.locator(f'[data-figure="{name}"]').inner_text()


def _since(days: int):
    return timezone.localdate() - timedelta(days=days - 1)


def test_the_admins_home_tiles_equal_the_database(page, demo: str) -> None:
    acme = Tenant.objects.get(slug="acme")
    admin = User.objects.get(email="admin@acme.test")
    _sign_in(page, demo, admin.email)
    page.goto(f"{demo}/")

    live = Channel.objects.filter(tenant=acme).exclude(status=ChannelStatus.DISABLED)
    now = timezone.now()
    backed_off = live.filter(status=ChannelStatus.ACTIVE, backoff_until__gt=now).count()
    failed = live.filter(status=ChannelStatus.ACTIVE, last_test_ok=False)
    healthy = live.filter(status=ChannelStatus.ACTIVE).exclude(last_test_ok=False)
    assert shown(page, "connected") == healthy.exclude(backoff_until__gt=now).count()
    attention = live.filter(status=ChannelStatus.NEEDS_ATTENTION).count() + failed.count()
    assert shown(page, "attention") == attention
    assert shown(page, "paused") == live.filter(status=ChannelStatus.PAUSED).count()
    assert shown(page, "backed-off") == backed_off
    assert page.locator(".channel-line").count() == min(live.count(), 5)
    # The checks of the custom SMTP channels this admin looks after (the team's and their own,
    # live), as the warnings above the tiles: a colleague's own channel is theirs.
    failing = (
        SendingDomainCheck.objects.filter(tenant=acme, state="fail", channel__kind="custom_smtp")
        .filter(Q(channel__owner__isnull=True) | Q(channel__owner=admin))
        .exclude(channel__status=ChannelStatus.DISABLED)
        .count()
    )
    assert f"{failing} fail" in page.locator('[data-figure="domains"]').inner_text()

    today = _sums(Rollup.objects.filter(tenant=acme, day=timezone.localdate()))
    assert shown(page, "sent-today") == today["sent"]
    # Each limit's use is its window's count of sends, as the pipeline enforces it.
    limits = page.locator(".limit-line")
    assert limits.count(), "the demo's Gmail mailbox has its daily limit"
    for key in [line.get_attribute("data-limit") for line in limits.all()]:
        _, pk, rule = key.split("-")  # channel-<pk>-<rule>: the demo has no domain caps
        channel = Channel.objects.get(pk=pk)
        (limit,) = [r for r in channel.kind_spec.limits(channel) if r.name == rule]
        slots = QuotaSlot.objects.filter(channel=channel, rule=rule)
        assert (
            shown(page, f"limit-{key}") == slots.filter(at__gt=time.time() - limit.seconds).count()
        )

    week = _sums(Rollup.objects.filter(tenant=acme, day__gte=_since(7)))
    month = _sums(Rollup.objects.filter(tenant=acme, day__gte=_since(30)))
    assert week["sent"] and month["sent"], "the demo has a month of mail"
    assert shown(page, "sent-7") == week["sent"]
    assert shown(page, "sent-30") == month["sent"]
    assert rate(page, "bounce-rate-7") == percent_of(week["hard"] + week["soft"], week["sent"])
    assert rate(page, "bounce-rate-30") == percent_of(month["hard"] + month["soft"], month["sent"])
    assert rate(page, "complaint-rate-7") == percent_of(week["complained"], week["sent"])
    assert rate(page, "complaint-rate-30") == percent_of(month["complained"], month["sent"])

    reasons = (
        ReasonRollup.objects.filter(tenant=acme, day__gte=_since(30))
        .values("reason")
        .annotate(n=Sum("count"))
        .order_by("-n", "reason")[:3]
    )
    assert reasons, "the demo's month has bounces"
    for row in reasons:
        assert shown(page, f"reason-{row['reason']}") == row["n"]
    domains = (
        DomainRollup.objects.filter(tenant=acme, day__gte=_since(30))
        .filter(Q(hard__gt=0) | Q(soft__gt=0))
        .values("domain")
        .annotate(n=Sum(F("hard") + F("soft")))
        .order_by("-n", "domain")[:3]
    )
    for row in domains:
        assert shown(page, f"domain-{row['domain']}") == row["n"]
        sent = DomainRollup.objects.filter(tenant=acme, day__gte=_since(30), domain=row["domain"])
        assert shown(page, f"domain-sent-{row['domain']}") == _sums(sent)["sent"]

    midnight = timezone.make_aware(
        timezone.datetime.combine(timezone.localdate(), timezone.datetime.min.time())
    )
    expected = {
        "suppressions-today": Suppression.objects.filter(
            tenant=acme, created_at__gte=midnight
        ).count(),
        "unverified-identities": Identity.objects.filter(
            tenant=acme, verified_at__isnull=True
        ).count(),
        "paused-channels": live.filter(status=ChannelStatus.PAUSED).count(),
        "failing-scans": InboxCursor.objects.filter(tenant=acme, ok=False)
        .exclude(channel__status=ChannelStatus.DISABLED)
        .values("channel_id")
        .distinct()
        .count(),
    }
    for key, count in expected.items():
        item = page.locator(f'[data-attention="{key}"]')
        if count:
            assert item.inner_text().startswith(f"{count} "), key
        else:
            assert item.count() == 0, key
    assert page.console_errors == []


def test_the_reps_home_shows_their_own_channel_queue_and_week(page, demo: str) -> None:
    acme = Tenant.objects.get(slug="acme")
    rep = User.objects.get(email="rep@acme.test")
    _sign_in(page, demo, rep.email)
    page.goto(f"{demo}/")

    theirs = (
        Channel.objects.filter(tenant=acme)
        .filter(Q(owner=rep) | Q(owner__isnull=True))
        .exclude(status=ChannelStatus.DISABLED)
    )
    assert page.locator("#tile-my-channel .channel-line").count() == theirs.count()
    waiting = Message.objects.filter(tenant=acme, sender=rep)
    queued = waiting.filter(status__in=[MessageStatus.QUEUED, MessageStatus.SENDING]).count()
    scheduled = waiting.filter(status=MessageStatus.SCHEDULED).count()
    if queued or scheduled:
        assert shown(page, "queued") == queued
        assert shown(page, "scheduled") == scheduled
    else:
        assert "Nothing waiting" in page.locator("#tile-queue").inner_text()

    week = _sums(Rollup.objects.filter(tenant=acme, sender=rep, day__gte=_since(7)))
    assert week["sent"], "the demo's rep sent mail this week"
    assert shown(page, "sent-7") == week["sent"]
    assert shown(page, "bounced-7") == week["hard"] + week["soft"]
    assert shown(page, "complained-7") == week["complained"]
    assert shown(page, "replied-7") == week["replied"]
    team = _sums(Rollup.objects.filter(tenant=acme, day__gte=_since(7)))
    if team["sent"] != week["sent"]:
        assert str(team["sent"]) not in page.locator("#tile-week .figures").inner_text()
    assert page.locator("#tile-today, #tile-rates, #tile-attention").count() == 0
    assert page.console_errors == []


def test_the_legacy_admins_home_counts_people_on_msc_servers(page, demo: str) -> None:
    globex = Tenant.objects.get(slug="globex")
    _sign_in(page, demo, "admin@globex.test")
    page.goto(f"{demo}/")
    people = (
        Channel.objects.filter(tenant=globex, kind__in=kinds.values(legacy_only=True))
        .exclude(status=ChannelStatus.DISABLED)
        .exclude(owner__isnull=True)
        .values("owner_id")
        .distinct()
        .count()
    )
    item = page.locator('[data-attention="legacy-people"]')
    if people:
        assert item.inner_text().startswith(f"{people} ")
    else:
        assert item.count() == 0


def test_the_staff_consoles_overview_equals_the_database(page, demo: str) -> None:
    _sign_in(page, demo, "staff@msc.test")
    page.goto(f"{demo}/staff/")
    assert shown(page, "legacy-tenants") == Tenant.objects.filter(legacy_toutapp=True).count()
    done = LegacyMigration.objects.filter(finished_at__isnull=False).count()
    assert shown(page, "migrations-done") == done
    pool = MscServer.objects.all()
    assert pool.exists(), "the demo's pool has its relay"
    assert shown(page, "pool-switched-on") == pool.filter(enabled=True).count()
    assert shown(page, "pool-failing") == pool.filter(enabled=True, last_check_ok=False).count()
    paused = (
        Channel.objects.filter(status=ChannelStatus.PAUSED)
        .values("tenant_id")
        .annotate(n=Count("pk"))
    )
    assert shown(page, "paused-tenants") == len(paused)
    open_spikes = BounceSpike.objects.filter(resolved_at__isnull=True)
    assert shown(page, "spike-tenants") == open_spikes.values("tenant_id").distinct().count()

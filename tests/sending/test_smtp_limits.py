"""Sending limits on a custom SMTP channel (per minute, hour, 24 hours), for ESP plans that have
them: enforced by the same quota rules as the providers' limits, through the pipeline and a
scripted relay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes

import pytest
from django.db.models import F
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from analytics.models import FeedKind, Notification
from channels.models import Channel
from sending import pipeline, quota
from sending.models import Hold, Message, MessageStatus, QuotaSlot
from tests.sending.conftest import Scripted, queue_message

pytestmark = pytest.mark.django_db


def test_the_message_over_the_minutes_limit_waits_for_the_window_and_then_goes_once(
    scripted: Scripted,
    acme: Tenant,
    rep_user: User,
    rep_client: Client,
    django_capture_on_commit_callbacks,
) -> None:
    server, identity = scripted([], per_minute=2)
    messages = [queue_message(acme, rep_user, identity, to=f"lead{n}@x.test") for n in range(3)]
    results = [pipeline.send_message(m.pk) for m in messages]
    assert results == ["sent", "sent", "held:throttle"]
    assert len(server.received.messages) == 2

    channel = Channel.objects.get(tenant=acme, owner__isnull=True)
    first = min(QuotaSlot.objects.filter(channel=channel).values_list("at", flat=True))
    waiting = Message.objects.get(pk=messages[2].pk)
    assert (waiting.status, waiting.hold) == (MessageStatus.QUEUED, Hold.THROTTLE)
    # It goes when the first send of the minute is a minute old.
    assert waiting.next_attempt_at == datetime.fromtimestamp(first + 60, UTC)
    assert waiting.detail_text.startswith("Team limit: 2 per minute; next send at ")
    (entry,) = Notification.objects.filter(user=rep_user, kind=FeedKind.THROTTLED)
    assert entry.words.startswith("Your mail is waiting: Team limit: 2 per minute")
    page = rep_client.get(reverse("sending:outbox")).content.decode()
    assert "Team limit: 2 per minute" in page and "2 / 2 · headroom 0" in page
    assert f'datetime="{waiting.next_attempt_at.isoformat()}"' in page  # its expected time

    # A minute later (the clock moved: the sends are older, the wait is over) it goes, once.
    QuotaSlot.objects.filter(channel=channel).update(at=F("at") - 61)
    Message.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.dispatch_due() == 1
    assert Message.objects.get(pk=waiting.pk).status == MessageStatus.SENT
    arrived = [message_from_bytes(m["data"])["Message-ID"] for m in server.received.messages]
    assert arrived == [m.message_id for m in messages]


def test_each_limit_is_its_own_rolling_window(
    scripted: Scripted, acme: Tenant, rep_user: User
) -> None:
    scripted([], per_minute=10, per_hour=50, per_day=200)
    channel = Channel.objects.get(tenant=acme, owner__isnull=True)
    rules = quota.rules_for(channel, None)
    assert [(r.name, r.limit, r.seconds, r.rolling) for r in rules] == [
        ("minute", 10, 60, True),
        ("hour", 50, 3600, True),
        ("day", 200, 86_400, True),
    ]
    assert [r.label for r in rules] == [
        "Team limit: 10 per minute",
        "Team limit: 50 per hour",
        "Team limit: 200 in 24 hours",
    ]
    # A channel of the user's own says it is theirs.
    mine = Channel(tenant=acme, owner=rep_user, kind=channel.kind, config=channel.config)
    assert quota.rules_for(mine, None)[0].label == "Your limit: 10 per minute"
    now = timezone.now().timestamp()
    for n in range(50):  # ten a minute for five minutes: the hour is full
        assert isinstance(quota.reserve(channel, rules, now + 60 * (n // 10)), quota.Reservation)
    held = quota.reserve(channel, rules, now + 300)
    assert isinstance(held, quota.Held) and held.rule.name == "hour"
    assert held.until == pytest.approx(now + 3600, abs=0.01)


def test_without_limits_custom_smtp_is_not_throttled(
    scripted: Scripted, acme: Tenant, rep_user: User, rep_client: Client
) -> None:
    server, identity = scripted([])
    channel = Channel.objects.get(tenant=acme, owner__isnull=True)
    assert quota.rules_for(channel, None) == []
    messages = [queue_message(acme, rep_user, identity, to=f"lead{n}@x.test") for n in range(5)]
    assert {pipeline.send_message(m.pk) for m in messages} == {"sent"}
    assert len(server.received.messages) == 5
    page = rep_client.get(reverse("sending:outbox")).content.decode()
    assert "Not throttled: no sending limit is set on this channel." in page


def test_limits_apply_from_the_next_send_once_saved(
    scripted: Scripted, acme: Tenant, rep_user: User
) -> None:
    """Lowering a limit on a channel that already sent holds the next message at once."""
    server, identity = scripted([], per_hour=100)
    sent = [queue_message(acme, rep_user, identity, to=f"lead{n}@x.test") for n in range(3)]
    assert {pipeline.send_message(m.pk) for m in sent} == {"sent"}
    channel = Channel.objects.get(tenant=acme, owner__isnull=True)
    Channel.objects.filter(pk=channel.pk).update(config={**channel.config, "per_hour": 3})
    later = queue_message(acme, rep_user, identity, to="late@x.test")
    assert pipeline.send_message(later.pk) == "held:throttle"
    waiting = Message.objects.get(pk=later.pk)
    assert waiting.next_attempt_at - timezone.now() > timedelta(minutes=59)
    assert len(server.received.messages) == 3


def test_a_queue_held_by_its_own_limit_is_expected_when_its_rule_frees(
    scripted: Scripted, acme: Tenant, rep_user: User
) -> None:
    """The team's batch arithmetic (25 every 45 s) is for Email Connection queues: a custom SMTP
    queue held by its own limit is expected when that limit frees."""
    from channels.models import TeamSendingSettings
    from sending.selectors import expected_send_times

    TeamSendingSettings.objects.create(tenant=acme, batch_size=25, wait_seconds=45)
    _, identity = scripted([], per_minute=2)
    frees = timezone.now() + timedelta(seconds=30)
    queued = [queue_message(acme, rep_user, identity, to=f"l{n}@x.test") for n in range(30)]
    Message.objects.filter(pk__in=[m.pk for m in queued]).update(
        hold=Hold.THROTTLE, next_attempt_at=frees
    )
    page = list(Message.objects.filter(pk__in=[m.pk for m in queued]).select_related("channel"))
    expected_send_times(page, TeamSendingSettings.objects.get(tenant=acme))
    assert {message.eta for message in page} == {frees}  # type: ignore[attr-defined]


def test_mail_held_by_a_limit_goes_as_soon_as_the_admin_removes_the_limit(
    scripted: Scripted,
    acme: Tenant,
    rep_user: User,
    admin_user: User,
    django_capture_on_commit_callbacks,
) -> None:
    """A new user cleared a 5-in-24-hours limit and the held mail still waited a day."""
    from channels import services as channel_services
    from tests.sending.conftest import RELAY_PASSWORD, relay_config

    server, identity = scripted([], per_day=1)
    messages = [queue_message(acme, rep_user, identity, to=f"lead{n}@x.test") for n in range(2)]
    assert [pipeline.send_message(m.pk) for m in messages] == ["sent", "held:cap"]
    waiting = Message.objects.get(pk=messages[1].pk)
    assert waiting.next_attempt_at > timezone.now() + timedelta(hours=23)
    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.dispatch_due() == 0  # still its time tomorrow
    channel_services.channel_save_smtp(
        tenant=acme,
        actor=admin_user,
        owner=None,
        config=relay_config(server),  # no limit any more
        password=RELAY_PASSWORD,
        use_for_all_members=True,
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert pipeline.dispatch_due() == 1
    assert Message.objects.get(pk=waiting.pk).status == MessageStatus.SENT
    assert len(server.received.messages) == 2


def test_a_paused_channel_says_so_in_the_outbox_limits(
    scripted: Scripted, acme: Tenant, rep_user: User, rep_client: Client, admin_client: Client
) -> None:
    """Paused by a bounce spike, the Sending limits panel says so and why (it said only "Not
    throttled", and the queued mail looked due)."""
    from django.utils.html import escape

    from bounces import spikes

    scripted([])
    channel = Channel.objects.get(tenant=acme, owner__isnull=True)
    now = timezone.now()
    spikes._pause(channel, now - timedelta(minutes=30), now, 20, 6, 10)
    page = rep_client.get(reverse("sending:outbox")).content.decode()
    panel = page[page.index("Sending limits") :]
    assert "paused: bounce spike" in panel
    assert "waits in the queue until an admin resumes the channel" in panel
    channel.refresh_from_db()
    assert escape(channel.status_text) in panel
    # The channel's card leads an admin to where it is resumed; a rep, who cannot, gets no link.
    spikes_url = f'href="{reverse("bounces:spikes")}"'
    team = admin_client.get(reverse("channels:team")).content.decode()
    assert spikes_url in team[team.index("paused: bounce spike") :][:300]
    mine = rep_client.get(reverse("channels:overview")).content.decode()
    assert spikes_url not in mine
    # An admin's Outbox panel and Delivery channels' team tab lead there too.
    outbox = admin_client.get(reverse("sending:outbox") + "?scope=team").content.decode()
    assert spikes_url in outbox[outbox.index("Sending limits") :]
    tab = admin_client.get(reverse("channels:overview") + "?section=team").content.decode()
    assert "paused: bounce spike" in tab and spikes_url in tab

"""A feed entry carries the time of the event it reports, and the feed is ordered by it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from analytics import feed
from analytics.models import FeedKind, Notification
from bounces import services as bounces
from bounces.models import BounceEvent
from channels.models import Identity
from sending.models import Message, MessageStatus
from tests.bounces.conftest import dsn_for, mark_sent
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db


def _entries(client: Client, query: str = "") -> list[tuple[str, str]]:
    """(text, time shown) of each entry on the page, top to bottom."""
    page = client.get(reverse("analytics:live_feed") + query).content.decode()
    entries = []
    for item in re.findall(r'<li class="feed-item.*?</li>', page, re.S):
        when = re.search(r"<time[^>]*>([^<]*)</time>", item)
        text = re.sub(r"<small.*", "", item, flags=re.S)
        text = re.sub(r"<span class=\"badge[^>]*>[^<]*</span>|<[^>]+>", "", text)
        entries.append((" ".join(text.split()), when.group(1) if when else ""))
    return entries


def test_a_bounce_from_twenty_days_ago_is_listed_twenty_days_ago(
    acme: Tenant, rep_user: User, rep_identity: Identity, rep_client: Client
) -> None:
    message = mark_sent(
        queue_message(acme, rep_user, rep_identity), ago=timedelta(days=20, hours=1)
    )
    # Something that happened just now is written first, the old bounce after it.
    feed.notify(acme.pk, [(rep_user.pk, FeedKind.SENT, "Sent to now@x.test: Hi", "/outbox/sent/")])
    bounced_at = timezone.now() - timedelta(days=20)
    bounces.ingest_many(tenant=acme, items=[bounces.Incoming(dsn_for(message), bounced_at)])

    entry = Notification.objects.get(kind=FeedKind.BOUNCED)
    event = BounceEvent.objects.get()
    assert entry.created_at == event.received_at == bounced_at
    message.refresh_from_db()
    assert message.status == MessageStatus.BOUNCED

    shown = _entries(rep_client)
    assert [when for _, when in shown] == ["just now", "20 days ago"]
    assert shown[0][0].startswith("Sent to now@x.test")
    assert shown[1][0].startswith("pat@prospect.test bounced")
    # Paging by key follows the same order: older than the recent entry is the old bounce.
    newest = Notification.objects.get(kind=FeedKind.SENT)
    older = _entries(rep_client, f"?before={newest.pk}")
    assert [when for _, when in older] == ["20 days ago"]


@override_settings(DEBUG=True)
def test_the_seeded_history_lists_each_bounce_when_it_happened() -> None:
    call_command("seed_demo")
    acme = Tenant.objects.get(slug="acme")
    bounced = Message.objects.for_tenant(acme).filter(status=MessageStatus.BOUNCED)
    entries = Notification.objects.for_tenant(acme).filter(kind=FeedKind.BOUNCED)
    assert entries.count() == bounced.count() > 0
    when = {e.link: e.created_at for e in entries}
    for event in BounceEvent.objects.for_tenant(acme).filter(message__isnull=False):
        assert when[f"/bounces/{event.pk}/"] == event.received_at == event.message.bounced_at
    assert all(at < timezone.now() - timedelta(hours=11) for at in when.values())

    client = Client()
    client.force_login(User.objects.get(email="rep@acme.test"))
    shown = _entries(client)
    assert len(shown) == entries.count()
    assert not [t for _, t in shown if t == "just now" or "minute" in t or "hour" in t]
    times = list(entries.order_by("-created_at").values_list("created_at", flat=True))
    assert times == sorted(times, reverse=True)


def test_a_bounce_reported_while_the_send_was_recorded_is_listed_after_the_send(
    acme: Tenant, rep_user: User, rep_identity: Identity, rep_client: Client
) -> None:
    """The receiving server's report can be dated during the SMTP session, a few milliseconds
    before our send is recorded (the demo's relay does this): the bounce is dated no earlier
    than its message was sent, and the feed lists it above the "Sent" entry."""
    from sending import pipeline

    message = queue_message(acme, rep_user, rep_identity)
    assert pipeline.send_message(message.pk) == "sent"
    message.refresh_from_db()
    assert message.sent_at is not None
    sent = Notification.objects.get(kind=FeedKind.SENT)
    assert sent.created_at == message.sent_at  # the time recorded as sent

    reported = message.sent_at - timedelta(milliseconds=6)
    bounces.ingest_many(tenant=acme, items=[bounces.Incoming(dsn_for(message), reported)])
    event = BounceEvent.objects.get()
    entry = Notification.objects.get(kind=FeedKind.BOUNCED)
    assert event.received_at == entry.created_at == message.sent_at
    shown = [text for text, _ in _entries(rep_client)]
    assert shown[0].startswith("pat@prospect.test bounced (Mailbox does not exist, hard)")
    assert shown[1].startswith("Sent to pat@prospect.test")

"""The live feed: every kind of entry, the kind filter, who sees what, pinned queries."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Role, Tenant, User
from analytics import feed
from analytics.models import FeedKind, Notification
from channels.models import Channel
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def entries(acme: Tenant, globex: Tenant, rep_user: User, admin_user: User, outsider_user: User):
    second_admin = MembershipFactory(
        tenant=acme, user__email="admin2@acme.test", role=Role.ADMIN
    ).user
    feed.notify(
        acme.pk,
        [
            (rep_user.pk, FeedKind.SENT, "Sent to a@x.test: Hello", "/outbox/sent/"),
            (rep_user.pk, FeedKind.BOUNCED, "b@x.test bounced (userunknown, hard): Hello", ""),
            (rep_user.pk, FeedKind.FAILED, "Not sent to c@x.test: 550 rejected", ""),
            (rep_user.pk, FeedKind.THROTTLED, "Your mail is waiting: batch of 25", ""),
        ],
    )
    team = Channel.objects.create(tenant=acme, kind="custom_smtp")
    feed.notify_channel(team, "Team channel needs attention: 535", "/channels/team/")
    feed.notify(globex.pk, [(outsider_user.pk, FeedKind.SENT, "Sent to secret@globex.test", "")])
    return second_admin


def _texts(client: Client, query: str = "") -> list[str]:
    page = client.get(reverse("analytics:live_feed") + query).content.decode()
    return [
        text
        for text in (
            "Sent to a@x.test",
            "b@x.test bounced",
            "Not sent to c@x.test",
            "Your mail is waiting",
            "needs attention: 535",
            "secret@globex.test",
        )
        if text in page
    ]


def test_every_kind_shows_and_channel_notices_are_addressed(
    entries: User, rep_client: Client, admin_client: Client, django_assert_max_num_queries
) -> None:
    with django_assert_max_num_queries(8):
        mine = _texts(rep_client)
    # The rep: their own four; the team channel's notice went to the admins.
    assert mine == [
        "Sent to a@x.test",
        "b@x.test bounced",
        "Not sent to c@x.test",
        "Your mail is waiting",
    ]
    assert _texts(admin_client) == [*mine, "needs attention: 535"]
    # Each admin got one notice, and each sees exactly one, not one per admin.
    assert Notification.objects.filter(kind=FeedKind.CHANNEL).count() == 2
    page = admin_client.get(reverse("analytics:live_feed")).content.decode()
    assert page.count("needs attention: 535") == 1


def test_the_kind_filter_narrows_the_page_and_the_polling(
    entries: User, rep_client: Client
) -> None:
    assert _texts(rep_client, "?kind=bounced") == ["b@x.test bounced"]
    assert _texts(rep_client, "?kind=nonsense") == _texts(rep_client)  # unknown: all
    page = rep_client.get(reverse("analytics:live_feed") + "?kind=failed").content.decode()
    assert "kind=failed" in page  # the poller asks for failures only
    newer = rep_client.get(reverse("analytics:live_feed_newer") + "?after=0&kind=sent")
    body = newer.content.decode()
    assert "Sent to a@x.test" in body and "bounced" not in body.split("feed-poller")[0]


def test_older_entries_are_reached_by_key_without_gaps_or_repeats(
    acme: Tenant, rep_user: User, rep_client: Client, django_assert_max_num_queries
) -> None:
    feed.notify(
        acme.pk, [(rep_user.pk, FeedKind.SENT, f"Sent to n{n:03d}@x.test", "") for n in range(120)]
    )
    seen: list[str] = []
    url = reverse("analytics:live_feed")
    for _ in range(4):
        with django_assert_max_num_queries(9):
            page = rep_client.get(url).content.decode()
        seen += re.findall(r"Sent to (n\d{3})@x\.test", page)
        assert ('hx-trigger="every 4s"' in page) == ("before=" not in url)  # only the newest polls
        older = re.search(r'href="(\?before=\d+)">Older', page)
        if older is None:
            break
        url = reverse("analytics:live_feed") + older.group(1).replace("&amp;", "&")
    assert len(seen) == 120 and len(set(seen)) == 120
    assert seen[0] == "n119" and seen[-1] == "n000"  # newest first, all the way back
    assert "Nothing older." not in page and "← Newest" in page

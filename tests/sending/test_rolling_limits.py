"""Provider limits as the providers count them: Gmail's and Exchange Online's daily limits are
rolling 24-hour windows (``sending.quota``), exact across workers, and the clock is driven through
the functions' ``now``."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Tenant, User
from channels import services as channel_services
from channels.kinds import ChannelKind, Rule
from channels.kinds.base import rolling
from channels.models import Channel, Identity, TeamSendingSettings
from sending import quota
from sending.models import Message, MessageStatus, QuotaSlot, QuotaWindow
from tests.mailservers import SmtpServer
from tests.sending.conftest import gmail_channel, queue_message, relay_config

pytestmark = pytest.mark.django_db

DAY = 86_400


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _taken(result: quota.Reservation | quota.Held) -> bool:
    return isinstance(result, quota.Reservation)


def test_a_day_full_by_midnight_stays_full_after_it_and_frees_24_hours_after_each_send(
    acme: Tenant, rep_user: User
) -> None:
    channel = gmail_channel(acme, rep_user)
    day = rolling("day", 3, DAY, "3 in 24 hours")
    for moment in ("2026-11-23T22:00:00", "2026-11-23T23:00:00", "2026-11-23T23:59:00"):
        assert _taken(quota.reserve(channel, [day], _at(moment)))
    assert not _taken(quota.reserve(channel, [day], _at("2026-11-23T23:59:30")))

    # Half past midnight is a new calendar day, not a new window: still full, and it says when
    # the first slot frees (the 22:00 send turns 24 hours old).
    held = quota.reserve(channel, [day], _at("2026-11-24T00:30:00"))
    assert isinstance(held, quota.Held) and held.rule is day
    assert held.until == _at("2026-11-24T22:00:00")
    (use,) = quota.usage(channel, [day], _at("2026-11-24T00:30:00"))
    assert (use.used, use.headroom) == (3, 0)
    assert use.resets_at == datetime(2026, 11, 24, 22, tzinfo=UTC)
    assert not _taken(quota.reserve(channel, [day], _at("2026-11-24T21:59:59")))

    # At 22:00 the next day one slot is free, exactly one; then the 23:00 one, and so on.
    assert _taken(quota.reserve(channel, [day], _at("2026-11-24T22:00:00")))
    held = quota.reserve(channel, [day], _at("2026-11-24T22:00:01"))
    assert isinstance(held, quota.Held) and held.until == _at("2026-11-24T23:00:00")
    assert _taken(quota.reserve(channel, [day], _at("2026-11-24T23:00:00")))
    # Sends older than the window are forgotten as the window moves on.
    assert QuotaSlot.objects.filter(channel=channel).count() == 3


def test_an_aligned_day_would_have_reset_at_midnight(acme: Tenant, rep_user: User) -> None:
    """The contrast: a calendar-day cap (Exchange on-premises, set by the customer's IT) frees
    at 00:00 UTC, which Gmail and Exchange Online would refuse."""
    channel = gmail_channel(acme, rep_user)
    calendar = Rule("day", 3, DAY, True, "3 a day")
    for moment in ("2026-11-23T22:00:00", "2026-11-23T23:00:00", "2026-11-23T23:59:00"):
        assert _taken(quota.reserve(channel, [calendar], _at(moment)))
    assert _taken(quota.reserve(channel, [calendar], _at("2026-11-24T00:30:00")))


def test_gmail_and_exchange_online_count_their_days_rolling(acme: Tenant, rep_user: User) -> None:
    channel = gmail_channel(acme, rep_user)
    team = TeamSendingSettings.objects.get(tenant=acme)
    gmail = {r.name: r for r in quota.rules_for(channel, team)}
    assert gmail["day"].rolling and (gmail["day"].limit, gmail["day"].seconds) == (2000, DAY)
    assert not gmail["second"].rolling and gmail["second"].aligned
    assert gmail["day"].label == "Gmail limit: 2,000 messages in 24 hours"
    channel.kind = ChannelKind.EXCHANGE_ONLINE
    exchange = {r.name: r for r in quota.rules_for(channel, team)}
    assert exchange["day"].rolling and exchange["day"].limit == 10_000
    assert exchange["minute"].aligned and not exchange["minute"].rolling


def test_a_lowered_limit_holds_until_enough_sends_have_left_the_window(
    acme: Tenant, rep_user: User
) -> None:
    """600 sends in the last 24 hours and the mailbox marked a trial account (500): nothing goes
    until the 500th newest send is 24 hours old."""
    channel = gmail_channel(acme, rep_user)
    now = _at("2026-11-24T12:00:00")
    start = now - 600 * 60  # one a minute for the last ten hours
    (before,) = [rule for rule in channel.kind_spec.limits(channel) if rule.rolling]
    for n in range(600):
        assert _taken(quota.reserve(channel, [before], start + n * 60))
    channel.config = {**channel.config, "trial": True}
    (day,) = [rule for rule in channel.kind_spec.limits(channel) if rule.rolling]
    assert day.limit == 500
    held = quota.reserve(channel, [day], now)
    assert isinstance(held, quota.Held)
    assert held.until == start + 100 * 60 + DAY  # the 500th newest is send no. 100
    assert not _taken(quota.reserve(channel, [day], held.until - 1))
    assert _taken(quota.reserve(channel, [day], held.until))


def test_a_released_rolling_slot_is_free_again(acme: Tenant, rep_user: User) -> None:
    channel = gmail_channel(acme, rep_user)
    day = rolling("day", 1, DAY, "1 in 24 hours")
    batch = Rule("batch", 5, 45, False, "batch")
    now = _at("2026-11-24T12:00:00")
    taken = quota.reserve(channel, [batch, day], now)
    assert isinstance(taken, quota.Reservation) and len(taken.rolling) == 1
    assert not _taken(quota.reserve(channel, [batch, day], now + 1))
    # The full rolling rule rolled the batch slot of the refused reservation back too.
    assert {u.rule.name: u.used for u in quota.usage(channel, [batch, day], now + 1)} == {
        "batch": 1,
        "day": 1,
    }
    quota.release(taken)  # the message never reached the server
    assert {u.rule.name: u.used for u in quota.usage(channel, [batch, day], now + 1)} == {
        "batch": 0,
        "day": 0,
    }
    assert _taken(quota.reserve(channel, [batch, day], now + 2))


def test_a_day_counted_by_the_old_calendar_counter_is_recounted_not_trusted(
    acme: Tenant, rep_user: User
) -> None:
    """Before rolling windows, Gmail's day was a calendar-day counter under the same rule name:
    its count (here: full) must not hold a mailbox whose last 24 hours hold no send of ours."""
    channel = gmail_channel(acme, rep_user)
    now = _at("2026-11-24T12:00:00")
    QuotaWindow.objects.create(channel=channel, rule="day", window_start=now - 3600, used=2000)
    (day,) = [rule for rule in channel.kind_spec.limits(channel) if rule.rolling]
    assert _taken(quota.reserve(channel, [day], now))
    assert QuotaWindow.objects.get(channel=channel, rule="day").used == 1  # counted again
    (use,) = quota.usage(channel, [day], now)
    assert use.used == 1


def test_the_count_follows_every_send_pruned_and_given_back(acme: Tenant, rep_user: User) -> None:
    """The counter row decides while the window has room: it is the number of sends inside."""
    channel = gmail_channel(acme, rep_user)
    hour = rolling("hour", 3, 3600, "3 an hour")
    now = _at("2026-11-24T12:00:00")
    taken = [quota.reserve(channel, [hour], now + n) for n in range(3)]
    second = taken[1]
    assert all(_taken(t) for t in taken) and isinstance(second, quota.Reservation)
    assert not _taken(quota.reserve(channel, [hour], now + 10))

    def counted() -> int:
        return QuotaWindow.objects.get(channel=channel, rule="hour").used

    assert counted() == 3
    quota.release(second)
    assert counted() == 2
    quota.release(second)  # twice is once
    assert counted() == 2
    assert _taken(quota.reserve(channel, [hour], now + 11))
    assert not _taken(quota.reserve(channel, [hour], now + 12))
    # An hour after the first send, it leaves the window: one is pruned, one taken.
    assert _taken(quota.reserve(channel, [hour], now + 3600))
    assert counted() == 3 == QuotaSlot.objects.filter(channel=channel, rule="hour").count()


@pytest.mark.django_db(transaction=True)
def test_workers_reserving_at_once_never_take_more_than_the_limit(
    acme: Tenant, rep_user: User
) -> None:
    """Eight workers (threads, each with its own database connection) race for one rolling
    window of ten: exactly ten get a slot, whoever they are."""
    channel = gmail_channel(acme, rep_user)
    day = rolling("day", 10, DAY, "10 in 24 hours")
    start = threading.Barrier(8)
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            start.wait(10)
            for _ in range(5):
                taken = _taken(quota.reserve(channel, [day]))
                with lock:
                    results.append(taken)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 40
    assert results.count(True) == 10
    assert QuotaSlot.objects.filter(channel=channel, rule="day").count() == 10


def test_usage_of_a_rolling_rule_counts_only_its_window(acme: Tenant, rep_user: User) -> None:
    channel: Channel = gmail_channel(acme, rep_user)
    day = rolling("day", 5, DAY, "5 in 24 hours")
    now = _at("2026-11-24T12:00:00")
    for back in (DAY + 1, DAY - 10, 3600):
        quota.reserve(channel, [day], now - back)
    (use,) = quota.usage(channel, [day], now)
    assert (use.used, use.headroom) == (2, 3)
    assert use.resets_at == datetime.fromtimestamp(now - (DAY - 10) + DAY, UTC)


def _set_limits(channel: Channel, admin: User, server: SmtpServer, **limits: int) -> None:
    """The admin saves the team channel's limits, as the settings page does."""
    channel_services.channel_save_smtp(
        tenant=channel.tenant,
        actor=admin,
        owner=None,
        config=relay_config(server, **limits),
        password=None,
        use_for_all_members=True,
    )


def _sent(channel: Channel, user: User, identity: Identity, ago: timedelta | None) -> Message:
    message = queue_message(channel.tenant, user, identity, to="p@prospect.test")
    if ago is None:  # still queued: not sent
        return message
    Message.objects.filter(pk=message.pk).update(
        channel=channel, status=MessageStatus.SENT, sent_at=timezone.now() - ago
    )
    return message


def test_a_24_hour_limit_set_mid_day_counts_what_the_channel_sent_before_it(
    acme: Tenant,
    admin_user: User,
    rep_user: User,
    relay: SmtpServer,
    team_channel: Channel,
    rep_identity: Identity,
) -> None:
    # The channel sent all morning without a limit: no window counted those sends.
    for ago in (timedelta(hours=23), timedelta(hours=2), timedelta(minutes=1)):
        _sent(team_channel, rep_user, rep_identity, ago)
    _sent(team_channel, rep_user, rep_identity, timedelta(hours=25))  # outside the window
    _sent(team_channel, rep_user, rep_identity, None)  # never sent
    assert not QuotaSlot.objects.exists()

    _set_limits(team_channel, admin_user, relay, per_day=4)
    team_channel.refresh_from_db()
    slots = QuotaSlot.objects.filter(channel=team_channel, rule="day")
    assert slots.count() == 3
    window = QuotaWindow.objects.get(channel=team_channel, rule="day")
    assert window.used == 3
    rules = quota.rules_for(team_channel, None)
    assert _taken(quota.reserve(team_channel, rules))  # the 4th of the 24 hours
    held = quota.reserve(team_channel, rules)
    assert isinstance(held, quota.Held) and held.rule.name == "day"
    oldest = min(slots.values_list("at", flat=True))
    assert held.until == oldest + DAY  # when the send of 23 hours ago turns 24 hours old
    assert abs(oldest - (timezone.now() - timedelta(hours=23)).timestamp()) < 60

    # Changed again, the window is not counted twice (the reservation in flight stays).
    _set_limits(team_channel, admin_user, relay, per_day=10, per_hour=5)
    assert QuotaSlot.objects.filter(channel=team_channel, rule="day").count() == 4
    assert QuotaWindow.objects.get(channel=team_channel, rule="day").used == 4
    # The new hour counts the sends of the last hour only: one a minute ago.
    assert QuotaSlot.objects.filter(channel=team_channel, rule="hour").count() == 1

    # Taken off, then set again: the sends in between are counted too.
    _set_limits(team_channel, admin_user, relay)
    assert not QuotaSlot.objects.filter(channel=team_channel).exists()
    _sent(team_channel, rep_user, rep_identity, timedelta(seconds=5))
    _set_limits(team_channel, admin_user, relay, per_day=100)
    assert QuotaSlot.objects.filter(channel=team_channel, rule="day").count() == 4
    assert QuotaWindow.objects.get(channel=team_channel, rule="day").used == 4

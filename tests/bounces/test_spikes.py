"""Bounce-spike protection: a channel whose recent mail bounces past the tenant's limit is
paused (its queue held, nothing lost), admins are told, and an admin resumes it, keeping the
bounces or undoing a false wave. On PostgreSQL, with the real relay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db.models import Sum
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from analytics.models import FeedKind, Notification, Rollup
from bounces import services, spikes
from bounces.models import BounceEvent, BounceSpike
from channels.models import Channel, ChannelAuditEvent, ChannelStatus, Identity, TeamSendingSettings
from sending import pipeline
from sending.models import Hold, Message, MessageStatus, Suppression, SuppressionReason
from tests.bounces.conftest import dsn_for, mark_sent
from tests.mailservers import SmtpServer
from tests.sending.conftest import queue_message


def _send(acme: Tenant, rep: User, identity: Identity, n: int, prefix: str = "p") -> list[Message]:
    return [
        mark_sent(queue_message(acme, rep, identity, to=f"{prefix}{i}@prospect.test"))
        for i in range(n)
    ]


def _bounce(acme: Tenant, messages: list[Message]) -> None:
    items = [services.Incoming(dsn_for(m, own_id=f"<s{m.pk}@mx>")) for m in messages]
    with TestCase.captureOnCommitCallbacks(execute=True):  # the admins' email goes on commit
        services.ingest_many(tenant=acme, items=items)


@pytest.fixture
def sent(acme: Tenant, rep_user: User, rep_identity: Identity) -> list[Message]:
    return _send(acme, rep_user, rep_identity, 20)


def test_a_spike_pauses_the_channel_holds_its_queue_and_tells_the_admins(
    acme: Tenant,
    sent: list[Message],
    team_channel: Channel,
    admin_user: User,
    rep_user: User,
    rep_identity: Identity,
    relay: SmtpServer,
) -> None:
    waiting = queue_message(acme, rep_user, rep_identity, to="next@prospect.test")
    _bounce(acme, sent[:2])  # 2 of 20 = 10 %: at the limit, not past it
    team_channel.refresh_from_db()
    assert team_channel.status == ChannelStatus.ACTIVE and not BounceSpike.objects.exists()

    _bounce(acme, sent[2:3])  # 3 of 20 = 15 %
    team_channel.refresh_from_db()
    assert team_channel.status == ChannelStatus.PAUSED
    assert "Paused automatically: 3 of 20 sent since" in team_channel.status_text
    spike = BounceSpike.objects.get()
    assert (spike.channel, spike.sent, spike.bounced, spike.threshold_pct) == (
        team_channel,
        20,
        3,
        10,
    )
    waiting.refresh_from_db()
    assert (waiting.status, waiting.hold) == (MessageStatus.QUEUED, Hold.SPIKE)

    # Mail queued later is held by the worker that picks it up; nothing reaches the relay.
    later = queue_message(acme, rep_user, rep_identity, to="later@prospect.test")
    assert pipeline.send_message(later.pk) == f"held:{Hold.SPIKE}"
    assert relay.received.messages == []
    later.refresh_from_db()
    assert later.status == MessageStatus.QUEUED and "Paused automatically" in later.status_detail

    told = Notification.objects.filter(kind=FeedKind.CHANNEL)
    assert set(told.values_list("user", flat=True)) == {admin_user.pk}  # team channel: admins
    assert told.get().link == reverse("bounces:spike", args=[spike.pk])
    (email,) = mail.outbox
    assert email.to == [admin_user.email] and "paused" in email.subject
    assert f"/bounces/spikes/{spike.pk}/" in email.body
    assert ChannelAuditEvent.objects.filter(
        channel=team_channel, action="paused (bounce spike)"
    ).exists()

    # More bounces while paused: no second spike, no second pause.
    _bounce(acme, sent[3:6])
    assert BounceSpike.objects.count() == 1


def test_too_little_mail_or_protection_off_never_pauses(
    acme: Tenant, rep_user: User, rep_identity: Identity, team_channel: Channel
) -> None:
    few = _send(acme, rep_user, rep_identity, 10)
    _bounce(acme, few[:5])  # 50 %, but only 10 sent: under the 20 needed to judge
    team_channel.refresh_from_db()
    assert team_channel.status == ChannelStatus.ACTIVE

    TeamSendingSettings.objects.update_or_create(tenant=acme, defaults={"spike_protection": False})
    more = _send(acme, rep_user, rep_identity, 20, prefix="q")
    _bounce(acme, more[:15])
    team_channel.refresh_from_db()
    assert team_channel.status == ChannelStatus.ACTIVE and not BounceSpike.objects.exists()


def test_old_mail_is_outside_the_hour(
    acme: Tenant, rep_user: User, rep_identity: Identity, team_channel: Channel
) -> None:
    old = [
        mark_sent(
            queue_message(acme, rep_user, rep_identity, to=f"o{i}@p.test"), ago=timedelta(hours=2)
        )
        for i in range(30)
    ]
    _bounce(acme, old[:20])
    team_channel.refresh_from_db()
    assert team_channel.status == ChannelStatus.ACTIVE


def _pause(acme: Tenant, sent: list[Message]) -> BounceSpike:
    _bounce(acme, sent[:4])
    return BounceSpike.objects.get()


def test_admin_resumes_keeping_the_bounces_and_the_queue_goes_out(
    acme: Tenant,
    sent: list[Message],
    team_channel: Channel,
    rep_user: User,
    rep_identity: Identity,
    admin_client,
    rep_client,
    outsider_client,
    relay: SmtpServer,
    django_capture_on_commit_callbacks,
) -> None:
    waiting = queue_message(acme, rep_user, rep_identity, to="next@prospect.test")
    spike = _pause(acme, sent)
    waiting.refresh_from_db()
    assert waiting.hold == Hold.SPIKE
    ledger = admin_client.get(reverse("bounces:list")).content.decode()
    assert "is paused:" in ledger and reverse("bounces:spike", args=[spike.pk]) in ledger
    assert "is paused:" not in rep_client.get(reverse("bounces:list")).content.decode()
    page = admin_client.get(reverse("bounces:spike", args=[spike.pk])).content.decode()
    assert (
        "4 bounces" in page
        and "Mailbox does not exist" in page
        and "Undo 4 bounces and resume" in page
    )
    url = reverse("bounces:spike_resolve", args=[spike.pk])
    assert rep_client.post(url).status_code == 403
    assert outsider_client.post(url).status_code == 404
    assert rep_client.get(reverse("bounces:spikes")).status_code == 403

    response = admin_client.post(url, follow=True)
    assert "resumed; the bounces stay recorded" in response.content.decode()
    spike.refresh_from_db()
    team_channel.refresh_from_db()
    assert team_channel.status == ChannelStatus.ACTIVE and team_channel.status_message == ""
    assert (spike.outcome, spike.undone) == (BounceSpike.Outcome.RESUMED, 0)
    assert Message.objects.filter(status=MessageStatus.BOUNCED).count() == 4

    with django_capture_on_commit_callbacks(execute=True):  # it enqueues after commit
        pipeline.dispatch_due()  # the held mail is released and (eager tasks) sent
    waiting.refresh_from_db()
    assert waiting.status == MessageStatus.SENT, waiting.status_detail
    assert [m["to"] for m in relay.received.messages] == [["next@prospect.test"]]

    # Measured again from the resume: the old wave alone does not pause it a second time.
    _bounce(acme, sent[4:8])
    team_channel.refresh_from_db()
    assert team_channel.status == ChannelStatus.ACTIVE
    # Resolving twice is refused with a message, not an error page.
    again = admin_client.post(url, follow=True).content.decode()
    assert "already been dealt with" in again


def test_undoing_a_false_wave_restores_messages_and_figures(
    acme: Tenant, sent: list[Message], team_channel: Channel, admin_client, admin_user: User
) -> None:
    spike = _pause(acme, sent)
    _bounce(acme, sent[4:6])  # arrived while paused: part of the same wave
    assert Rollup.objects.aggregate(b=Sum("hard"))["b"] == 6
    assert Suppression.objects.filter(reason=SuppressionReason.HARD_BOUNCE).count() == 6
    Suppression.objects.create(tenant=acme, address="kept@x.test", reason=SuppressionReason.MANUAL)
    response = admin_client.post(
        reverse("bounces:spike_resolve", args=[spike.pk]), {"undo": "1"}, follow=True
    )
    assert "6 bounces were marked “not a bounce”" in response.content.decode()
    spike.refresh_from_db()
    assert (spike.outcome, spike.undone, spike.resolved_by) == (
        BounceSpike.Outcome.UNDONE,
        6,
        admin_user,
    )
    assert not Message.objects.filter(status=MessageStatus.BOUNCED).exists()
    assert BounceEvent.objects.filter(undone_at__isnull=False, undone_by=admin_user).count() == 6
    assert Rollup.objects.aggregate(b=Sum("hard"))["b"] == 0
    # The wave's suppressions are lifted with it; an admin's own entry stays.
    assert list(Suppression.objects.values_list("address", flat=True)) == ["kept@x.test"]
    team_channel.refresh_from_db()
    assert team_channel.status == ChannelStatus.ACTIVE


def test_a_personal_channels_spike_tells_its_owner_too(
    acme: Tenant, rep_user: User, admin_user: User, rep_identity: Identity, team_channel: Channel
) -> None:
    personal = Channel.objects.create(tenant=acme, owner=rep_user, kind="custom_smtp")
    messages = _send(acme, rep_user, rep_identity, 20)
    Message.objects.filter(pk__in=[m.pk for m in messages]).update(channel=personal)
    for m in messages:
        m.refresh_from_db()
    _bounce(acme, messages[:10])
    personal.refresh_from_db()
    assert personal.status == ChannelStatus.PAUSED
    told = set(Notification.objects.filter(kind=FeedKind.CHANNEL).values_list("user", flat=True))
    assert told == {admin_user.pk, rep_user.pk}
    assert sorted(mail.outbox[0].to) == sorted([admin_user.email, rep_user.email])


def test_spike_settings_form_checks_its_values(acme: Tenant, admin_client) -> None:
    url = reverse("channels:spike_protection")
    bad = admin_client.post(url, {"spike_threshold_pct": "0", "spike_min_sent": "abc"})
    assert bad.status_code == 400
    page = bad.content.decode()
    assert "greater than or equal to 1" in page and "Enter a whole number" in page
    admin_client.post(
        url, {"spike_protection": "on", "spike_threshold_pct": "25", "spike_min_sent": "50"}
    )
    rules = TeamSendingSettings.objects.get(tenant=acme)
    assert (rules.spike_protection, rules.spike_threshold_pct, rules.spike_min_sent) == (
        True,
        25,
        50,
    )
    assert ChannelAuditEvent.objects.filter(subject="Bounce-spike protection").exists()
    team = admin_client.get(reverse("channels:team")).content.decode()
    assert 'value="25"' in team


def test_two_batches_at_once_open_one_spike(
    acme: Tenant, sent: list[Message], team_channel: Channel
) -> None:
    # The check runs inside the bounce transaction; a second run finds the channel paused.
    _bounce(acme, sent[:4])
    assert spikes.check(acme.pk, {team_channel.pk}, timezone.now()) == []
    assert BounceSpike.objects.count() == 1

"""Bounce-spike protection per receiving provider: a wave of bounces from one provider's
mailboxes, across the team's channels, pauses sending to that provider only; admins are told
and resume it, keeping the bounces or undoing the wave. Requests in autocommit."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client, TestCase
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from analytics import rollups
from analytics.models import FeedKind, Notification
from bounces import services, spikes
from bounces.models import BounceEvent, BounceSpike
from channels import providers
from channels.models import Channel, ChannelStatus, Identity, ReceivingDomain, TeamSendingSettings
from msc_admin.stored import read
from sending import pipeline
from sending.models import Hold, Message, MessageStatus
from tests.bounces.conftest import dsn_for, mark_sent
from tests.mailservers import SmtpServer
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db(transaction=True)


def _sent(acme: Tenant, rep: User, identity: Identity, domain: str, n: int) -> list[Message]:
    """Mail sent a few minutes ago, counted in the roll-ups as a send counts it."""
    sent = [mark_sent(queue_message(acme, rep, identity, to=f"p{i}@{domain}")) for i in range(n)]
    for message in sent:
        assert message.sent_at is not None
        rollups.count_sent(message, message.sent_at)
    return sent


def _bounce(acme: Tenant, messages: list[Message]) -> None:
    items = [services.Incoming(dsn_for(m, own_id=f"<s{m.pk}@mx>")) for m in messages]
    with TestCase.captureOnCommitCallbacks(execute=True):  # the admins' email goes on commit
        services.ingest_many(tenant=acme, items=items)


def _reload(message: Message) -> Message:
    message.refresh_from_db()
    return message


@pytest.fixture
def wave(acme: Tenant, rep_user: User, rep_identity: Identity) -> dict[str, list[Message]]:
    """20 to Gmail, 10 to a Google Workspace company (by its MX), 30 to other domains."""
    ReceivingDomain.objects.create(
        domain="workspace.test", provider=providers.GOOGLE, checked_at=timezone.now()
    )
    return {
        "gmail": _sent(acme, rep_user, rep_identity, "gmail.com", 20),
        "workspace": _sent(acme, rep_user, rep_identity, "workspace.test", 10),
        "other": _sent(acme, rep_user, rep_identity, "prospect.test", 30),
    }


# In a test transaction: mail queued here waits for the test to send it (in autocommit its
# task would run at once, eagerly).
@pytest.mark.django_db
def test_a_wave_from_one_provider_pauses_only_that_provider_and_tells_the_admins(
    acme: Tenant,
    wave: dict[str, list[Message]],
    team_channel: Channel,
    admin_user: User,
    rep_user: User,
    rep_identity: Identity,
    relay: SmtpServer,
) -> None:
    to_gmail = queue_message(acme, rep_user, rep_identity, to="next@gmail.com")
    to_company = queue_message(acme, rep_user, rep_identity, to="next@workspace.test")
    to_other = queue_message(acme, rep_user, rep_identity, to="next@prospect.test")

    _bounce(acme, wave["gmail"][:3])  # Google: 3 of 30 = 10 %, at the limit, not past it
    assert not BounceSpike.objects.exists()
    _bounce(acme, wave["workspace"][:1])  # 4 of 30 = 13 %; the channel: 4 of 60 = 7 %
    spike = BounceSpike.objects.get()
    assert (spike.provider, spike.channel, spike.sent, spike.bounced, spike.threshold_pct) == (
        providers.GOOGLE,
        None,
        30,
        4,
        10,
    )
    team_channel.refresh_from_db()
    assert team_channel.status == ChannelStatus.ACTIVE
    assert TeamSendingSettings.of_tenant(acme.pk).paused_providers == [providers.GOOGLE]
    for held in (_reload(to_gmail), _reload(to_company)):
        assert (held.status, held.hold, held.next_attempt_at) == (
            MessageStatus.QUEUED,
            Hold.PROVIDER,
            None,
        )
        assert "sending to Google mailboxes is paused" in held.detail_text
    assert _reload(to_other).hold == Hold.NONE

    told = Notification.objects.filter(kind=FeedKind.CHANNEL)
    assert set(told.values_list("user", flat=True)) == {admin_user.pk}
    assert read(told.get().text).startswith("Sending to Google mailboxes paused: 4 of 30")
    assert told.get().link == reverse("bounces:spike", args=[spike.pk])
    (email,) = mail.outbox
    assert email.to == [admin_user.email] and f"/bounces/spikes/{spike.pk}/" in email.body

    # The worker holds new mail to Google, and mail to the others goes.
    later = queue_message(acme, rep_user, rep_identity, to="later@gmail.com")
    assert pipeline.send_message(later.pk) == f"held:{Hold.PROVIDER}"
    assert pipeline.send_message(to_other.pk) == "sent"
    assert [m["to"] for m in relay.received.messages] == [["next@prospect.test"]]

    # More bounces while paused: no second spike.
    _bounce(acme, wave["gmail"][3:5])  # (the channel: 6 of 60, not past its limit)
    assert BounceSpike.objects.count() == 1


def test_too_little_mail_to_a_provider_never_pauses_it(
    acme: Tenant, rep_user: User, rep_identity: Identity, team_channel: Channel
) -> None:
    few = _sent(acme, rep_user, rep_identity, "outlook.com", 10)
    _sent(acme, rep_user, rep_identity, "prospect.test", 30)
    _bounce(acme, few[:3])  # 30 % of Microsoft's, but only 10 sent to judge by
    assert not BounceSpike.objects.exists()
    assert TeamSendingSettings.of_tenant(acme.pk).paused_providers == []


def test_bounces_from_no_watched_provider_are_measured_by_no_query_but_the_cache(
    acme: Tenant, django_assert_num_queries
) -> None:
    """Every batch of bounces asks: one from companies' own servers reads the domain cache and
    nothing else (not the team's settings: there is nothing to measure)."""
    TeamSendingSettings.objects.create(tenant=acme, spike_min_sent=1, spike_threshold_pct=1)
    with django_assert_num_queries(1):
        assert spikes.check_providers(acme.pk, {"prospect.test", "contoso.test"}) == []
    with django_assert_num_queries(0):
        assert spikes.check_providers(acme.pk, set()) == []
    assert not BounceSpike.objects.exists()


def test_an_admin_undoes_a_false_wave_and_the_held_mail_goes(
    acme: Tenant,
    wave: dict[str, list[Message]],
    team_channel: Channel,
    admin_user: User,
    admin_client: Client,
    rep_client: Client,
    rep_user: User,
    rep_identity: Identity,
    relay: SmtpServer,
) -> None:
    _bounce(acme, wave["gmail"][:5])
    spike = BounceSpike.objects.get()
    # Queued while paused: its task (run at once here) holds it.
    waiting = queue_message(acme, rep_user, rep_identity, to="next@gmail.com")
    assert _reload(waiting).hold == Hold.PROVIDER
    assert ["next@gmail.com"] not in [m["to"] for m in relay.received.messages]
    page = admin_client.get(reverse("bounces:spike", args=[spike.pk])).content.decode()
    assert "Bounce spike: Mail to Google mailboxes" in page
    assert "Undo 5 bounces and resume" in page and "Resume sending" in page
    listed = admin_client.get(reverse("bounces:spikes")).content.decode()
    assert "Mail to Google mailboxes" in listed
    url = reverse("bounces:spike_resolve", args=[spike.pk])
    assert rep_client.post(url, {"undo": "1"}).status_code == 403
    assert BounceSpike.objects.get().is_open

    response = admin_client.post(url, {"undo": "1"}, follow=True)
    assert "Mail to Google mailboxes resumed. 5 bounces were marked" in response.content.decode()
    spike.refresh_from_db()
    assert (spike.outcome, spike.undone, spike.resolved_by) == (
        BounceSpike.Outcome.UNDONE,
        5,
        admin_user,
    )
    assert not BounceEvent.objects.filter(undone_at__isnull=True).exists()
    assert not Message.objects.filter(status=MessageStatus.BOUNCED).exists()
    assert TeamSendingSettings.of_tenant(acme.pk).paused_providers == []
    waiting = _reload(waiting)
    assert waiting.hold == Hold.NONE and waiting.next_attempt_at <= timezone.now()
    assert waiting.attempts == 0
    assert pipeline.send_message(waiting.pk) == "sent"
    resumed = Notification.objects.filter(kind=FeedKind.CHANNEL, text__contains="resumed by")
    assert read(resumed.get().text) == (
        f"Mail to Google mailboxes resumed by {admin_user.email}, 5 bounces marked “not a bounce”."
    )


def test_resuming_keeps_the_bounces_and_measures_again_from_the_resume(
    acme: Tenant,
    wave: dict[str, list[Message]],
    team_channel: Channel,
    admin_client: Client,
) -> None:
    _bounce(acme, wave["gmail"][:5])
    spike = BounceSpike.objects.get()
    response = admin_client.post(reverse("bounces:spike_resolve", args=[spike.pk]), follow=True)
    assert "Mail to Google mailboxes resumed; the bounces stay recorded" in (
        response.content.decode()
    )
    assert Message.objects.filter(status=MessageStatus.BOUNCED).count() == 5
    assert TeamSendingSettings.of_tenant(acme.pk).paused_providers == []
    _bounce(acme, wave["gmail"][5:6])  # mail sent before the resume: not a new spike
    assert BounceSpike.objects.count() == 1 and not BounceSpike.objects.get().is_open

"""Provider push-back never drops mail.

A scripted server answers a channel-level reply (a rate or a quota) to the first try and then
accepts: the channel is held with the reason and an ETA (``Channel.backoff_until``, each queued
message ``Hold.BACKOFF`` at that time, the Outbox's words), no message fails, and once the window
has passed every message goes out exactly once, in its place (counted at the server). A reply
about one recipient fails or retries that message only, and the others go.
"""

from __future__ import annotations

import time
from datetime import timedelta
from email import message_from_bytes

import pytest
import responses
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from accounts.models import Tenant, User
from analytics.models import FeedKind, Notification
from channels import services as channel_services
from channels.kinds import ChannelKind
from channels.models import Channel, Identity
from msc_admin.devtls import Certificates
from sending import pipeline, quota
from sending.models import Hold, Message, MessageStatus
from tests.mailservers import SmtpServer, smtp_server
from tests.sending.conftest import Scripted, gmail_channel, queue_message

pytestmark = pytest.mark.django_db

GRAPH = "https://graph.example.test"
GMAIL_DAILY = (
    "550-5.4.5 Daily user sending limit exceeded. For more information on Gmail\r\n"
    "550-5.4.5 sending limits go to\r\n"
    "550 5.4.5  https://support.google.com/a/answer/166852 - gsmtp"
)
EXCHANGE_QUOTA = (
    "554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to "
    "process message due to a permanent exception with message Cannot submit message."
)
RATE, QUOTA = "rate", "quota"
CHANNEL_LEVEL = [
    pytest.param("421 4.7.0 Try again later, closing connection.", RATE, id="421"),
    pytest.param("450 Too many requests", RATE, id="450-too-many"),
    pytest.param("451 4.3.2 Rate limit exceeded, try again later", RATE, id="451-rate"),
    pytest.param("452 4.3.2 Too many concurrent SMTP connections", RATE, id="452-concurrency"),
    pytest.param("450 4.3.2 Hourly sending quota reached", RATE, id="450-hourly-quota"),
    pytest.param("451 4.7.1 Please slow down", RATE, id="4.7.x"),
    pytest.param("550 5.4.5 Daily user sending limit exceeded.", QUOTA, id="gmail-550-5.4.5"),
    pytest.param(GMAIL_DAILY, QUOTA, id="gmail-550-5.4.5-multiline"),
    pytest.param(EXCHANGE_QUOTA, QUOTA, id="exchange-submission-quota"),
]


def _window_passes(channel: Channel) -> None:
    """The clock moves past the back-off: the channel's and its messages' waits are over."""
    past = timezone.now() - timedelta(seconds=1)
    Channel.objects.filter(pk=channel.pk).update(backoff_until=past)
    Message.objects.filter(channel=channel, status=MessageStatus.QUEUED).update(
        next_attempt_at=past
    )


def _dispatch(capture) -> int:  # type: ignore[no-untyped-def]
    with capture(execute=True):  # its hand-overs run after commit, as with beat
        return pipeline.dispatch_due()


def _assert_held(channel: Channel, messages: list[Message], reason: str) -> None:
    channel.refresh_from_db()
    assert channel.backoff_until is not None and channel.backoff_until > timezone.now()
    assert channel.backoff_text.startswith(reason)
    for message in Message.objects.filter(pk__in=[m.pk for m in messages]):
        assert (message.status, message.hold) == (MessageStatus.QUEUED, Hold.BACKOFF)
        assert message.next_attempt_at == channel.backoff_until  # everyone keeps their place
        assert message.detail_text.startswith(reason)
        assert "; resuming at " in message.detail_text
    assert not Message.objects.filter(status=MessageStatus.FAILED).exists()


def _assert_each_sent_once(server: SmtpServer, messages: list[Message]) -> None:
    statuses = set(
        Message.objects.filter(pk__in=[m.pk for m in messages]).values_list("status", flat=True)
    )
    assert statuses == {MessageStatus.SENT}
    arrived = [message_from_bytes(m["data"])["Message-ID"] for m in server.received.messages]
    assert arrived == [m.message_id for m in messages]  # once each, in their order


@pytest.mark.parametrize(("reply", "kind"), CHANNEL_LEVEL)
def test_a_channel_level_reply_holds_the_channel_and_every_message_then_goes_once(
    scripted: Scripted,
    acme: Tenant,
    rep_user: User,
    rep_client: Client,
    django_capture_on_commit_callbacks,
    reply: str,
    kind: str,
) -> None:
    server, identity = scripted([reply])
    messages = [queue_message(acme, rep_user, identity, to=f"lead{n}@x.test") for n in range(3)]
    before = timezone.now()
    assert pipeline.send_message(messages[0].pk) == "held:backoff"

    channel = Channel.objects.get(tenant=acme, owner__isnull=True)
    # The reply as smtplib reads it: the lines of a multi-line reply joined, under one code.
    said = " ".join(reply.replace("\r\n550-", " ").replace("\r\n550 ", " ").split())
    said = f"{said[:3]} {said[4:]}"
    if kind == RATE:
        reason = f"{channel.label} asked us to slow down ({said[:40]}"
        wait = (channel.backoff_until - before).total_seconds()
        assert 45 <= wait <= 75  # the first back-off: a minute, ±20 %
    else:
        reason = f"localhost's daily sending limit reached ({said[:40]}"
        # None of this channel's sends is in a rolling window: a conservative hour first.
        wait = (channel.backoff_until - before).total_seconds()
        assert 3599 <= wait <= 3605
    _assert_held(channel, messages, reason)
    assert server.received.messages == []
    # The rep hears of it once, and the Outbox says why and until when.
    (entry,) = Notification.objects.filter(user=rep_user)
    assert entry.kind == FeedKind.THROTTLED and entry.words.startswith(reason)
    page = rep_client.get(reverse("sending:outbox")).content.decode()
    assert escape(channel.backoff_text) in page
    assert f'datetime="{channel.backoff_until.isoformat()}"' in page
    assert page.count("Provider back-off") == 3

    _window_passes(channel)
    assert _dispatch(django_capture_on_commit_callbacks) == 3
    _assert_each_sent_once(server, messages)
    # Waiting spent no try: only the refused message was tried twice.
    tries = Message.objects.filter(pk__in=[m.pk for m in messages]).order_by("pk")
    assert [m.attempts for m in tries] == [2, 1, 1]
    channel.refresh_from_db()
    assert channel.backoff_level == 0  # the next push-back starts from the shortest wait


def test_quota_refusals_in_a_row_wait_longer_each_time_and_drop_nothing(
    scripted: Scripted, acme: Tenant, rep_user: User, django_capture_on_commit_callbacks
) -> None:
    server, identity = scripted([EXCHANGE_QUOTA, EXCHANGE_QUOTA])
    messages = [queue_message(acme, rep_user, identity, to=f"lead{n}@x.test") for n in range(2)]
    waits = []
    for attempt in range(2):
        before = timezone.now()
        if attempt == 0:
            assert pipeline.send_message(messages[0].pk) == "held:backoff"
        else:  # the same message first again, when the wait is over
            _dispatch(django_capture_on_commit_callbacks)
        channel = Channel.objects.get(tenant=acme, owner__isnull=True)
        waits.append(round((channel.backoff_until - before).total_seconds() / 3600))
        _assert_held(channel, messages, "localhost's daily sending limit reached")
        _window_passes(channel)
    assert waits == [1, 2]
    assert Notification.objects.filter(kind=FeedKind.THROTTLED).count() == 1
    assert _dispatch(django_capture_on_commit_callbacks) == 2
    _assert_each_sent_once(server, messages)


def test_a_daily_quota_reply_is_not_timed_by_a_shorter_limit_of_ours(
    scripted: Scripted, acme: Tenant, rep_user: User, django_capture_on_commit_callbacks
) -> None:
    """A custom SMTP channel limited to 100 a minute hears "daily quota exceeded": the minute
    that frees soon says nothing about the provider's day, so it waits the conservative hour."""
    server, identity = scripted(["250 2.0.0 Ok: queued", EXCHANGE_QUOTA], per_minute=100)
    messages = [queue_message(acme, rep_user, identity, to=f"lead{n}@x.test") for n in range(3)]
    assert pipeline.send_message(messages[0].pk) == "sent"
    before = timezone.now()
    assert pipeline.send_message(messages[1].pk) == "held:backoff"
    channel = Channel.objects.get(tenant=acme, owner__isnull=True)
    assert 3599 <= (channel.backoff_until - before).total_seconds() <= 3605
    _assert_held(channel, messages[1:], "localhost's daily sending limit reached")

    _window_passes(channel)
    assert _dispatch(django_capture_on_commit_callbacks) == 2
    _assert_each_sent_once(server, messages)


def _routed(tenant: Tenant, user: User, channel: Channel) -> Identity:
    identity = channel_services.identity_ensure_default(user=user, tenant=tenant)
    identity.channel = channel
    identity.save()
    return identity


def test_gmails_daily_limit_holds_the_mailbox_until_its_oldest_send_of_24_hours_frees(
    acme: Tenant,
    rep_user: User,
    rep_client: Client,
    certs: Certificates,
    settings,
    django_capture_on_commit_callbacks,
) -> None:
    with smtp_server(
        mode="starttls", cert=certs.trusted, tokens={"good-token"}, replies=[GMAIL_DAILY]
    ) as gmail:
        settings.MSC_GMAIL_SMTP = f"localhost:{gmail.port}"
        channel = gmail_channel(acme, rep_user)
        identity = _routed(acme, rep_user, channel)
        (day,) = [rule for rule in channel.kind_spec.limits(channel) if rule.rolling]
        twenty_hours_ago = time.time() - 20 * 3600
        assert isinstance(quota.reserve(channel, [day], twenty_hours_ago), quota.Reservation)
        messages = [queue_message(acme, rep_user, identity, to=f"p{n}@x.test") for n in range(2)]
        assert pipeline.send_message(messages[0].pk) == "held:backoff"

        channel.refresh_from_db()
        # Gmail counts the last 24 hours: a slot frees when the send of 20 hours ago turns 24.
        assert channel.backoff_until.timestamp() == pytest.approx(
            twenty_hours_ago + 86_400, abs=0.01
        )
        reason = "Gmail's daily sending limit reached (550 5.4.5 Daily user sending limit exceeded."
        _assert_held(channel, messages, reason)
        # The refused send gave its slot back: only the send of 20 hours ago counts.
        assert [u.used for u in quota.usage(channel, [day])] == [1]
        page = rep_client.get(reverse("sending:outbox")).content.decode()
        assert escape(reason) in page

        _window_passes(channel)
        assert _dispatch(django_capture_on_commit_callbacks) == 2
        _assert_each_sent_once(gmail, messages)
        assert [u.used for u in quota.usage(channel, [day])] == [3]


@pytest.mark.parametrize(
    "reply",
    [
        "550 5.1.1 <lead0@x.test>: Recipient address rejected: User unknown",
        "550 5.2.1 The email account that you tried to reach is disabled",
        "554 5.7.1 Message rejected as spam",
    ],
)
def test_a_permanent_refusal_fails_that_message_only_with_the_servers_words(
    scripted: Scripted, acme: Tenant, rep_user: User, reply: str
) -> None:
    server, identity = scripted([reply])
    messages = [queue_message(acme, rep_user, identity, to=f"lead{n}@x.test") for n in range(3)]
    assert [pipeline.send_message(m.pk) for m in messages] == ["failed", "sent", "sent"]
    failed = Message.objects.get(pk=messages[0].pk)
    assert failed.status == MessageStatus.FAILED
    assert failed.detail_text == f"The receiving server refused it: “{reply}”"
    assert failed.smtp_code == reply[:3]
    channel = Channel.objects.get(tenant=acme, owner__isnull=True)
    assert channel.backoff_until is None
    assert len(server.received.messages) == 2


@pytest.mark.parametrize(
    "reply",
    [
        "452 4.2.2 The email account that you tried to reach is over quota",
        "450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents "
        "additional messages from being delivered",
    ],
)
def test_a_temporary_refusal_about_the_recipient_retries_that_message_only(
    scripted: Scripted, acme: Tenant, rep_user: User, reply: str
) -> None:
    server, identity = scripted([reply])
    messages = [queue_message(acme, rep_user, identity, to=f"lead{n}@x.test") for n in range(2)]
    assert [pipeline.send_message(m.pk) for m in messages] == ["held:retry", "sent"]
    waiting = Message.objects.get(pk=messages[0].pk)
    assert (waiting.status, waiting.hold) == (MessageStatus.QUEUED, Hold.RETRY)
    assert reply[:20] in waiting.detail_text
    assert Channel.objects.get(tenant=acme, owner__isnull=True).backoff_until is None
    assert len(server.received.messages) == 1


# --- Microsoft Graph (Exchange Online), faked at the HTTP boundary ---------------------------


def _exchange_online(tenant: Tenant, user: User) -> Channel:
    channel = gmail_channel(tenant, user, token="graph-token")
    Channel.objects.filter(pk=channel.pk).update(
        kind=ChannelKind.EXCHANGE_ONLINE, config={"provider": "microsoft", "uid": "m-1"}
    )
    channel.refresh_from_db()
    return channel


def _graph_sends() -> list[str]:
    """The Message-IDs Graph accepted (202), in order."""
    import base64

    return [
        message_from_bytes(base64.b64decode(call.request.body))["Message-ID"]
        for call in responses.calls
        if call.response.status_code == 202
    ]


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, "ApplicationThrottled"), (503, "ServiceUnavailable")],
)
@responses.activate
def test_graph_push_back_holds_for_retry_after_and_every_message_then_goes_once(
    acme: Tenant,
    rep_user: User,
    settings,
    django_capture_on_commit_callbacks,
    status: int,
    error: str,
) -> None:
    settings.MSC_GRAPH_URL = GRAPH
    url = f"{GRAPH}/v1.0/me/sendMail"
    body = {"error": {"code": error, "message": "Too many requests, retry later"}}
    responses.post(url, status=status, headers={"Retry-After": "90"}, json=body)
    responses.post(url, status=202)  # every later call
    channel = _exchange_online(acme, rep_user)
    identity = _routed(acme, rep_user, channel)
    messages = [queue_message(acme, rep_user, identity, to=f"p{n}@x.test") for n in range(3)]
    before = timezone.now()
    assert pipeline.send_message(messages[0].pk) == "held:backoff"
    channel.refresh_from_db()
    assert timedelta(seconds=89) < channel.backoff_until - before < timedelta(seconds=95)
    _assert_held(channel, messages, f"{channel.label} asked us to slow down (Microsoft Graph")
    assert error in channel.backoff_text
    # The refusal took no slot of the rolling day, though the request had gone out.
    assert sum(u.used for u in quota.usage(channel, channel.kind_spec.limits(channel))) == 0

    _window_passes(channel)
    assert _dispatch(django_capture_on_commit_callbacks) == 3
    assert _graph_sends() == [m.message_id for m in messages]
    assert set(
        Message.objects.filter(pk__in=[m.pk for m in messages]).values_list("status", flat=True)
    ) == {MessageStatus.SENT}


@responses.activate
def test_exchange_onlines_submission_quota_through_graph_waits_for_its_rolling_day(
    acme: Tenant, rep_user: User, settings, django_capture_on_commit_callbacks
) -> None:
    settings.MSC_GRAPH_URL = GRAPH
    url = f"{GRAPH}/v1.0/me/sendMail"
    refusal = {
        "error": {
            "code": "ErrorSubmissionQuotaExceeded",
            "message": "STOREDRV.Submission.Exception:SubmissionQuotaExceededException",
        }
    }
    responses.post(url, status=403, json=refusal)
    responses.post(url, status=202)
    channel = _exchange_online(acme, rep_user)
    identity = _routed(acme, rep_user, channel)
    (day,) = [rule for rule in channel.kind_spec.limits(channel) if rule.rolling]
    sent_at = time.time() - 23 * 3600
    assert isinstance(quota.reserve(channel, [day], sent_at), quota.Reservation)
    messages = [queue_message(acme, rep_user, identity, to=f"p{n}@x.test") for n in range(2)]
    assert pipeline.send_message(messages[0].pk) == "held:backoff"
    channel.refresh_from_db()
    # Not "needs attention" (a 403 that names the quota is not a refused login).
    assert channel.status == "active"
    assert channel.backoff_until.timestamp() == pytest.approx(sent_at + 86_400, abs=0.01)
    _assert_held(channel, messages, "Exchange Online's daily sending limit reached")

    _window_passes(channel)
    assert _dispatch(django_capture_on_commit_callbacks) == 2
    assert _graph_sends() == [m.message_id for m in messages]


# --- as production runs it: requests and beat in autocommit ----------------------------------


@pytest.mark.django_db(transaction=True)
def test_mail_composed_during_a_push_back_waits_in_order_and_goes_once(
    scripted: Scripted, acme: Tenant, rep_user: User, rep_client: Client
) -> None:
    server, identity = scripted(["421 4.7.0 Try again later, closing connection."])
    for n in range(3):  # each send runs at once (tasks in-process): the first is refused
        response = rep_client.post(
            reverse("sending:compose"),
            {"identity": identity.pk, "to": f"lead{n}@x.test", "subject": "Hi", "body": "Hello"},
        )
        assert response.status_code == 302
    messages = list(Message.objects.order_by("pk"))
    channel = Channel.objects.get(tenant=acme, owner__isnull=True)
    _assert_held(channel, messages, f"{channel.label} asked us to slow down (421 4.7.0")
    page = rep_client.get(reverse("sending:outbox")).content.decode()
    assert "Its mail waits in the queue, in order, until" in page

    _window_passes(channel)
    assert pipeline.dispatch_due() == 3  # hands over at once in autocommit; tasks in-process
    _assert_each_sent_once(server, messages)

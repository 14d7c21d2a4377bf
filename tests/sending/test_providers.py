"""Email Connection sending: Gmail over SMTP XOAUTH2 (loopback), Exchange Online over Graph
(faked at the HTTP boundary), and the provider limits."""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes

import pytest
import responses
from django.utils import timezone

from accounts.models import Tenant, User
from analytics.models import FeedKind, Notification
from channels.kinds import ChannelKind
from channels.models import Channel, ChannelStatus, TeamSendingSettings
from msc_admin.devtls import Certificates
from sending import pipeline, quota
from sending.models import Hold, Message, MessageStatus
from tests.mailservers import connect_proxy, dripping_server, smtp_server
from tests.sending.conftest import gmail_channel, queue_message, route_identity

pytestmark = pytest.mark.django_db

GRAPH = "https://graph.example.test"


def test_gmail_sends_over_smtp_with_xoauth2(
    acme: Tenant, rep_user: User, certs: Certificates, settings
) -> None:
    with smtp_server(mode="starttls", cert=certs.trusted, tokens={"good-token"}) as gmail:
        settings.MSC_GMAIL_SMTP = f"localhost:{gmail.port}"
        channel = gmail_channel(acme, rep_user)
        identity = route_identity(acme, rep_user, channel)
        message = queue_message(acme, rep_user, identity)
        assert pipeline.send_message(message.pk) == "sent"
    assert gmail.received.auth_attempts == [("XOAUTH2", "rep@acme.test")]
    parsed = message_from_bytes(gmail.received.messages[0]["data"])
    assert parsed["Message-ID"] == message.message_id


def test_a_rejected_gmail_token_parks_the_mail_until_reconnected(
    acme: Tenant, rep_user: User, certs: Certificates, settings
) -> None:
    with smtp_server(mode="starttls", cert=certs.trusted, tokens={"other"}) as gmail:
        settings.MSC_GMAIL_SMTP = f"localhost:{gmail.port}"
        channel = gmail_channel(acme, rep_user)
        message = queue_message(acme, rep_user, route_identity(acme, rep_user, channel))
        assert pipeline.send_message(message.pk) == "held:auth"
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.NEEDS_ATTENTION
    assert channel.status_text.startswith("Authentication unsuccessful (535")


@responses.activate
def test_exchange_online_sends_the_mime_through_graph(
    acme: Tenant, rep_user: User, settings
) -> None:
    settings.MSC_GRAPH_URL = GRAPH
    responses.post(f"{GRAPH}/v1.0/me/sendMail", status=202)
    channel = gmail_channel(acme, rep_user, token="graph-token")
    Channel.objects.filter(pk=channel.pk).update(
        kind=ChannelKind.EXCHANGE_ONLINE, config={"provider": "microsoft", "uid": "m-1"}
    )
    channel.refresh_from_db()
    message = queue_message(acme, rep_user, route_identity(acme, rep_user, channel))
    assert pipeline.send_message(message.pk) == "sent"
    call = responses.calls[0].request
    assert call.headers["Authorization"] == "Bearer graph-token"
    assert call.headers["Content-Type"] == "text/plain"
    mime = message_from_bytes(base64.b64decode(call.body))
    assert mime["Message-ID"] == message.message_id and mime["To"] == "pat@prospect.test"


@responses.activate
def test_graph_throttling_backs_off_the_channel_for_retry_after(
    acme: Tenant, rep_user: User, settings
) -> None:
    settings.MSC_GRAPH_URL = GRAPH
    responses.post(
        f"{GRAPH}/v1.0/me/sendMail",
        status=429,
        headers={"Retry-After": "120"},
        json={"error": {"code": "ApplicationThrottled", "message": "Too many requests"}},
    )
    channel = gmail_channel(acme, rep_user)
    Channel.objects.filter(pk=channel.pk).update(kind=ChannelKind.EXCHANGE_ONLINE)
    channel.refresh_from_db()
    message = queue_message(acme, rep_user, route_identity(acme, rep_user, channel))
    before = timezone.now()
    assert pipeline.send_message(message.pk) == "held:backoff"
    channel.refresh_from_db()
    assert timedelta(seconds=119) < channel.backoff_until - before < timedelta(seconds=125)
    assert "ApplicationThrottled" in channel.backoff_text


@pytest.fixture
def egress_proxy(monkeypatch) -> Iterator[str]:
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with connect_proxy() as url:
        yield url


@pytest.mark.parametrize("through_proxy", [False, True], ids=["direct", "through-a-proxy"])
def test_graph_dripping_its_answer_is_cut_off_at_the_deadline_and_not_resent(
    acme: Tenant,
    rep_user: User,
    certs: Certificates,
    settings,
    monkeypatch,
    egress_proxy: str,
    through_proxy: bool,
) -> None:
    settings.MSC_OUTBOUND_TIMEOUT = 1
    settings.MSC_OUTBOUND_DEADLINE = 2
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca_file))  # requests trusts the test CA
    if through_proxy:
        monkeypatch.setenv("HTTPS_PROXY", egress_proxy)
    answer = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
    channel = gmail_channel(acme, rep_user, token="graph-token")
    Channel.objects.filter(pk=channel.pk).update(kind=ChannelKind.EXCHANGE_ONLINE)
    message = queue_message(acme, rep_user, route_identity(acme, rep_user, channel))
    with dripping_server(answer, every=0.5, cert=certs.trusted, after=b"\r\n\r\n") as graph:
        settings.MSC_GRAPH_URL = f"https://localhost:{graph.port}"
        started = time.monotonic()
        assert pipeline.send_message(message.pk) == "failed"
        took = time.monotonic() - started
    assert took < 3, took
    assert graph.connections == 1 and graph.dripped >= 3
    message.refresh_from_db()
    # The request had gone out: the message may have been sent, so it is never sent again.
    assert message.status == MessageStatus.FAILED and message.uncertain
    assert message.handed_over_at is not None
    assert message.detail_text.startswith(
        "Delivery uncertain: Microsoft Graph did not finish the conversation within 2 s; "
        "the message may have been sent."
    )


def test_provider_limits_by_kind(acme: Tenant, rep_user: User) -> None:
    gmail = gmail_channel(acme, rep_user)
    team = TeamSendingSettings.objects.get(tenant=acme)
    names = [(r.name, r.limit, r.seconds) for r in quota.rules_for(gmail, team)]
    assert names == [("batch", 25, 45), ("second", 2, 1), ("day", 2000, 86400)]
    gmail.config = {**gmail.config, "trial": True}
    assert quota.rules_for(gmail, team)[-1].limit == 500
    team.throttling_enabled = False
    assert [r.name for r in quota.rules_for(gmail, team)] == ["second", "day"]
    gmail.kind = ChannelKind.EXCHANGE_ONLINE
    assert [(r.name, r.limit) for r in quota.rules_for(gmail, team)] == [
        ("minute", 30),
        ("day", 10_000),
    ]
    gmail.kind = ChannelKind.CUSTOM_SMTP
    team.throttling_enabled = True
    assert quota.rules_for(gmail, team) == []  # custom SMTP: only the limits set on it


def test_a_full_rule_takes_no_slot_anywhere_and_says_when_it_frees(
    acme: Tenant, rep_user: User
) -> None:
    channel = gmail_channel(acme, rep_user)
    day = quota.Rule("day", 1_000, 86_400, True, "day")
    batch = quota.Rule("batch", 2, 45, False, "batch")
    now = 1_900_000_000.5
    assert isinstance(quota.reserve(channel, [day, batch], now), quota.Reservation)
    assert isinstance(quota.reserve(channel, [day, batch], now + 1), quota.Reservation)
    held = quota.reserve(channel, [day, batch], now + 2)
    assert isinstance(held, quota.Held) and held.rule.name == "batch" and held.until == now + 45
    used = {u.rule.name: u.used for u in quota.usage(channel, [day, batch], now + 2)}
    assert used == {"day": 2, "batch": 2}  # the refused send took no day slot
    # The next batch starts with the first send after the wait.
    assert isinstance(quota.reserve(channel, [day, batch], now + 45), quota.Reservation)
    assert {u.rule.name: u.used for u in quota.usage(channel, [day, batch], now + 45)} == {
        "day": 3,
        "batch": 1,
    }
    # Aligned windows reset at their boundary (UTC midnight for a day).
    cap = quota.Rule("day", 3, 86_400, True, "cap")
    held = quota.reserve(channel, [cap], now + 50)
    assert isinstance(held, quota.Held)
    assert held.until == math.floor(now / 86_400) * 86_400 + 86_400


def test_a_daily_cap_holds_the_whole_queue_until_midnight_and_drops_nothing(
    acme: Tenant, rep_user: User, certs: Certificates, settings
) -> None:
    with smtp_server(mode="starttls", cert=certs.trusted, tokens={"good-token"}) as gmail:
        settings.MSC_GMAIL_SMTP = f"localhost:{gmail.port}"
        channel = gmail_channel(acme, rep_user)
        Channel.objects.filter(pk=channel.pk).update(
            kind=ChannelKind.EXCHANGE_ONPREM, config={"daily_limit": 1, "email": "rep@acme.test"}
        )
        channel.refresh_from_db()
        TeamSendingSettings.objects.filter(tenant=acme).update(throttling_enabled=False)
        identity = route_identity(acme, rep_user, channel)
        messages = [queue_message(acme, rep_user, identity, to=f"p{n}@x.test") for n in range(3)]
        quota.reserve(channel, quota.rules_for(channel, None))  # today's one send is used
        assert pipeline.send_message(messages[0].pk) == "held:cap"
    midnight = math.floor(time.time() / 86_400) * 86_400 + 86_400
    for message in Message.objects.filter(pk__in=[m.pk for m in messages]):
        assert message.status == MessageStatus.QUEUED and message.hold == Hold.CAP
        assert message.next_attempt_at.timestamp() == midnight
        assert "Daily limit set by your IT: 1" in message.detail_text
    # One "throttled" entry in the rep's feed, however many messages wait.
    Message.objects.filter(pk=messages[1].pk).update(next_attempt_at=timezone.now())
    assert pipeline.send_message(messages[1].pk) == "held:cap"
    (entry,) = Notification.objects.filter(user=rep_user)
    assert entry.kind == FeedKind.THROTTLED and "Your mail is waiting: Daily limit" in entry.words

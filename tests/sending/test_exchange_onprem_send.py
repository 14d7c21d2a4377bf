"""Exchange on-premises sends our own MIME through EWS (``CreateItem``, ``SendAndSaveCopy``)
against the stand-in EWS server on loopback (``tests.ewsserver``), through the real pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest

from accounts.models import Tenant, User
from channels import services as channel_services
from channels.kinds import ExchangeOnPremConfig
from channels.models import Channel, ChannelStatus, Identity, TeamSendingSettings
from msc_admin.devtls import Certificates
from sending import pipeline
from sending.models import Hold, Message, MessageStatus
from tests.ewsserver import EwsServer, ews_server
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db

USER = "ACME\\rep"


@pytest.fixture
def exchange(certs: Certificates, tmp_path: Path) -> Iterator[EwsServer]:
    with ews_server(certs.trusted, username=USER, password="pw", tmp=tmp_path) as server:
        yield server


def onprem_channel(
    tenant: Tenant,
    user: User,
    server: EwsServer,
    *,
    password: str = "pw",
    daily_limit: int | None = None,
) -> tuple[Channel, Identity]:
    channel = channel_services.channel_save_exchange_onprem(
        tenant=tenant,
        actor=user,
        owner=user,
        config=ExchangeOnPremConfig(
            server_url=server.ews_url,
            username=USER,
            email=user.email,
            daily_limit=daily_limit,
        ),
        password=password,
    )
    identity = channel_services.identity_ensure_default(user=user, tenant=tenant)
    identity.channel = channel
    identity.save()
    return channel, identity


@pytest.mark.django_db(transaction=True)
def test_a_message_goes_out_through_ews_keeping_our_message_id(
    acme: Tenant, rep_user: User, exchange: EwsServer
) -> None:
    channel, identity = onprem_channel(acme, rep_user, exchange)
    message = queue_message(acme, rep_user, identity)  # sent once committed (eager task)
    (sent,) = exchange.sent
    mime = message_from_bytes(sent)
    assert mime["Message-ID"] == message.message_id and mime["To"] == "pat@prospect.test"
    assert [item.mime for item in exchange.folders["sentitems"]] == [sent]  # saved a copy
    assert "CreateItem" in exchange.operations and set(exchange.auth_seen) == {"NTLM"}
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT and message.handed_over_at is not None
    assert message.channel_id == channel.pk
    assert "Sent through EWS at localhost" in message.detail_text


def test_the_daily_limit_the_admin_set_holds_the_next_message(
    acme: Tenant, rep_user: User, exchange: EwsServer
) -> None:
    TeamSendingSettings.objects.filter(tenant=acme).update(throttling_enabled=False)
    _, identity = onprem_channel(acme, rep_user, exchange, daily_limit=1)
    first, second = (queue_message(acme, rep_user, identity, to=f"p{n}@x.test") for n in (1, 2))
    assert pipeline.send_message(first.pk) == "sent"
    assert pipeline.send_message(second.pk) == "held:cap"
    assert len(exchange.sent) == 1
    second.refresh_from_db()
    assert second.status == MessageStatus.QUEUED and second.hold == Hold.CAP
    assert "Daily limit set by your IT: 1" in second.detail_text


def test_a_refused_password_parks_the_mail_and_the_channel_needs_attention(
    acme: Tenant, rep_user: User, exchange: EwsServer
) -> None:
    channel, identity = onprem_channel(acme, rep_user, exchange, password="wrong")
    message = queue_message(acme, rep_user, identity)
    assert pipeline.send_message(message.pk) == "held:auth"
    assert exchange.sent == [] and "CreateItem" not in exchange.operations
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.NEEDS_ATTENTION
    assert "Exchange refused the user name or password" in channel.status_message
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED and message.hold == Hold.AUTH


def test_ews_disabled_for_the_mailbox_parks_the_mail_with_the_reason(
    acme: Tenant, rep_user: User, exchange: EwsServer
) -> None:
    channel, identity = onprem_channel(acme, rep_user, exchange)
    exchange.settings["ews_status"] = 403
    message = queue_message(acme, rep_user, identity)
    assert pipeline.send_message(message.pk) == "held:auth"
    channel.refresh_from_db()
    assert "EWS is disabled for this mailbox" in channel.status_message
    assert exchange.sent == []


def test_a_connection_cut_after_the_hand_over_is_uncertain_and_never_resent(
    acme: Tenant, rep_user: User, exchange: EwsServer
) -> None:
    _, identity = onprem_channel(acme, rep_user, exchange)
    exchange.settings["cut_on"] = "CreateItem"
    message = queue_message(acme, rep_user, identity)
    pipeline.send_message(message.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and message.uncertain
    assert message.handed_over_at is not None
    assert "may have been sent" in message.detail_text
    assert len(exchange.sent) == 1  # the server had it: sending it again could duplicate it
    assert pipeline.send_message(message.pk) != "sent"
    assert len(exchange.sent) == 1
    assert Message.objects.get(pk=message.pk).status == MessageStatus.FAILED


def test_ews_unavailable_holds_the_channel_and_fails_nothing(
    acme: Tenant, rep_user: User, exchange: EwsServer
) -> None:
    channel, identity = onprem_channel(acme, rep_user, exchange)
    exchange.settings["ews_status"] = 503
    message = queue_message(acme, rep_user, identity)
    assert pipeline.send_message(message.pk) == "held:backoff"
    assert exchange.sent == []
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED and message.hold == Hold.BACKOFF
    assert "not available (HTTP 503)" in message.detail_text
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.ACTIVE and channel.backoff_level == 1

"""Exchange on-premises: the connection test through EWS (exchangelib) against the stand-in EWS
server on loopback (``tests.ewsserver``): Autodiscover, NTLM or Basic as offered, and a clear
sentence on the channel page for each failure."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from channels import services
from channels.guard import OutboundRefused
from channels.kinds import ExchangeOnPremConfig
from channels.models import Channel, ChannelStatus
from msc_admin.devtls import Certificates
from tests.ewsserver import EwsServer, ews_server
from tests.mailservers import dripping_server

USER = "ACME\\rep"


def _channel(
    tenant: Tenant,
    user: User,
    *,
    url: str = "",
    password: str = "pw",
    email: str = "rep@localhost",
) -> Channel:
    config = ExchangeOnPremConfig(server_url=url, autodiscover=not url, username=USER, email=email)
    return services.channel_save_exchange_onprem(
        tenant=tenant, actor=user, owner=user, config=config, password=password
    )


def _test(client: Client, channel: Channel) -> str:
    response = client.post(reverse("channels:test", args=[channel.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def _autodiscover_at(server: EwsServer, settings) -> None:
    settings.MSC_EXCHANGE_AUTODISCOVER_PORT = server.port


@pytest.mark.django_db(transaction=True)
def test_autodiscover_finds_ews_and_the_mailbox_signs_in_with_ntlm(
    rep_client: Client, rep_user: User, acme: Tenant, certs: Certificates, tmp_path: Path, settings
) -> None:
    with ews_server(certs.trusted, username=USER, password="pw", tmp=tmp_path) as server:
        _autodiscover_at(server, settings)
        channel = _channel(acme, rep_user)
        page = _test(rep_client, channel)
    assert "Exchange accepted the credentials." in page
    assert f"EWS is at {server.ews_url}" in page and "offers NTLM sign-in" in page
    # A real NTLM handshake (the stand-in checked the response against the password), offered
    # alongside Basic and preferred to it; nothing signed in with Basic.
    assert server.auth_seen and set(server.auth_seen) == {"NTLM"}
    assert [op for op in server.operations if op != "probe"] == ["GetUserSettings", "FindItem"]
    channel.refresh_from_db()
    assert channel.last_test_ok is True and channel.status == ChannelStatus.ACTIVE


def test_it_signs_in_with_basic_when_that_is_all_the_server_offers(
    rep_client: Client, rep_user: User, acme: Tenant, certs: Certificates, tmp_path: Path
) -> None:
    with ews_server(certs.trusted, username=USER, password="pw", offer=("Basic",)) as server:
        channel = _channel(acme, rep_user, url=server.ews_url)
        page = _test(rep_client, channel)
    assert "Exchange accepted the credentials." in page and "offers Basic sign-in" in page
    assert set(server.auth_seen) == {"Basic"}
    channel.refresh_from_db()
    assert channel.last_test_ok is True


@pytest.mark.parametrize("offer", [("NTLM",), ("Basic",)])
def test_a_wrong_password_is_refused_and_the_channel_needs_attention(
    rep_client: Client,
    rep_user: User,
    acme: Tenant,
    certs: Certificates,
    tmp_path: Path,
    offer: tuple[str, ...],
) -> None:
    with ews_server(
        certs.trusted, username=USER, password="pw", offer=offer, tmp=tmp_path
    ) as server:
        channel = _channel(acme, rep_user, url=server.ews_url, password="wrong")
        page = _test(rep_client, channel)
    said = "Authentication unsuccessful: Exchange refused the user name or password (HTTP 401)."
    assert said in page
    assert server.auth_seen == [] and "FindItem" not in server.operations
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.NEEDS_ATTENTION
    assert channel.last_test_ok is False and channel.last_test_message.startswith(said)


def test_autodiscover_that_finds_nothing_says_to_enter_the_ews_url(
    rep_client: Client, rep_user: User, acme: Tenant, certs: Certificates, tmp_path: Path, settings
) -> None:
    with ews_server(
        certs.trusted, username=USER, password="pw", autodiscover=False, tmp=tmp_path
    ) as server:
        _autodiscover_at(server, settings)
        channel = _channel(acme, rep_user)
        page = _test(rep_client, channel)
    assert "Autodiscover found no Exchange server for localhost" in page
    assert f"https://localhost:{server.port}/autodiscover/autodiscover.svc (HTTP 404)" in page
    assert "Untick Autodiscover and enter the EWS URL" in page
    assert server.auth_seen == []
    channel.refresh_from_db()
    assert channel.last_test_ok is False


def test_an_untrusted_certificate_is_refused_before_credentials_are_sent(
    rep_client: Client, rep_user: User, acme: Tenant, certs: Certificates, tmp_path: Path
) -> None:
    with ews_server(certs.self_signed, username=USER, password="pw", tmp=tmp_path) as server:
        channel = _channel(acme, rep_user, url=server.ews_url)
        page = _test(rep_client, channel)
    assert "certificate is not trusted, so no password was sent" in page
    assert server.operations == [] and server.auth_seen == []
    channel.refresh_from_db()
    assert channel.last_test_ok is False


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ({"ews_status": 403}, "EWS is disabled for this mailbox or this server"),
        ({"access_denied": True}, "Exchange denied this mailbox access through EWS"),
        ({"ews_status": 503}, "is not available (HTTP 503); will try again."),
    ],
)
def test_ews_switched_off_or_down_is_said_in_words(
    rep_client: Client,
    rep_user: User,
    acme: Tenant,
    certs: Certificates,
    tmp_path: Path,
    fault: dict,
    said: str,
) -> None:
    with ews_server(certs.trusted, username=USER, password="pw", tmp=tmp_path, **fault) as server:
        channel = _channel(acme, rep_user, url=server.ews_url)
        page = _test(rep_client, channel)
    assert said in page
    assert "MSC" not in page
    channel.refresh_from_db()
    assert channel.last_test_ok is False and said in channel.last_test_message


@pytest.mark.django_db(transaction=True)
def test_an_ews_server_dripping_its_answer_is_cut_off_at_the_deadline(
    rep_client: Client, rep_user: User, acme: Tenant, certs: Certificates, settings
) -> None:
    settings.MSC_OUTBOUND_TIMEOUT = 1
    settings.MSC_OUTBOUND_DEADLINE = 2
    answer = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n"
    with dripping_server(answer, every=0.5, cert=certs.trusted, after=b"\r\n\r\n") as server:
        channel = _channel(acme, rep_user, url=f"https://localhost:{server.port}/EWS/Exchange.asmx")
        started = time.monotonic()
        page = _test(rep_client, channel)
        took = time.monotonic() - started
    assert took < 3, took
    assert server.dripped >= 3  # answering all along: the deadline ended it, not a read timeout
    said = "Exchange did not finish the conversation within 2 s"
    assert said in page
    channel.refresh_from_db()
    assert channel.last_test_ok is False and channel.last_test_message == said


def test_the_production_guard_refuses_a_private_ews_server_before_connecting(
    rep_client: Client, rep_user: User, acme: Tenant, certs: Certificates, tmp_path: Path, settings
) -> None:
    settings.MSC_OUTBOUND_ALLOW_PRIVATE = False
    with ews_server(certs.trusted, username=USER, password="pw", tmp=tmp_path) as server:
        channel = _channel(acme, rep_user, url=server.ews_url)
        page = _test(rep_client, channel)
        assert "resolves to 127.0.0.1, which is not a public internet address" in page
        assert server.operations == []
        # The suite's own server, named exactly, passes the production guard.
        settings.MSC_OUTBOUND_TEST_ALLOW = frozenset({server.address})
        assert "Exchange accepted the credentials." in _test(rep_client, channel)


def test_exchangelib_sends_nothing_outside_a_guarded_conversation(
    certs: Certificates, tmp_path: Path
) -> None:
    from exchangelib.protocol import BaseProtocol

    with (
        ews_server(certs.trusted, username=USER, password="pw", tmp=tmp_path) as server,
        BaseProtocol.raw_session(server.ews_url) as session,
        pytest.raises(OutboundRefused, match="only made inside a guarded conversation"),
    ):
        session.post(server.ews_url, data=b"<x/>")
    assert server.operations == []


def test_the_card_offers_scan_now_and_says_where_bounces_are_read(
    rep_client: Client, fresh_rep_client: Client, rep_user: User, acme: Tenant
) -> None:
    _channel(acme, rep_user, url="https://mail.acme.test/EWS/Exchange.asmx")
    page = rep_client.get(reverse("channels:overview")).content.decode()
    card = page[page.index('id="connect-exchange-onprem"') :]
    card = card[: card.index("</section>")]
    assert "Scan now" in card and "the Inbox and Junk Email are read through EWS" in card
    assert "not supported" in card and "Hybrid" in card  # only Hybrid is unsupported now
    assert "bounce tracking is not supported" not in page and "MSC server" not in page
    form = fresh_rep_client.get(reverse("channels:exchange_edit")).content.decode()
    assert "read from the mailbox's Inbox and Junk Email" in form

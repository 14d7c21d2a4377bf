"""A Gmail or Exchange Online mailbox sends only as its own addresses: the ones its provider
lists (Gmail's send-as aliases, Exchange Online's proxy addresses). Google and Microsoft are
faked at the HTTP boundary only (``responses``), with the shapes their APIs answer."""

from __future__ import annotations

from email import message_from_bytes
from urllib.parse import parse_qs, urlparse

import pytest
import responses
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from channels import services
from channels.kinds import ChannelKind
from channels.models import Channel, ChannelAuditEvent, Identity
from msc_admin.devtls import Certificates
from sending import pipeline
from sending.models import Hold, Message, MessageStatus
from tests.channels.conftest import reauthenticate
from tests.channels.test_oauth import (  # noqa: F401 - fixtures
    GOOGLE_TOKEN,
    GOOGLE_USERINFO,
    MICROSOFT_TOKEN,
    google_configured,
    microsoft_configured,
)
from tests.mailservers import smtp_server
from tests.sending.conftest import (  # noqa: F401 - fixtures
    gmail_channel,
    queue_message,
    relay,
    team_channel,
)

GMAIL_SEND_AS = "https://gmail.googleapis.com/gmail/v1/users/me/settings/sendAs"
GRAPH = "https://graph.microsoft.com"
GRAPH_ME = f"{GRAPH}/v1.0/me?$select=mail,proxyAddresses,userPrincipalName"

# users.settings.sendAs.list, as Gmail answers it: the primary address, an accepted custom
# "from" alias, and one still waiting for its owner's confirmation.
SEND_AS_LIST = {
    "sendAs": [
        {
            "sendAsEmail": "rep@acme.test",
            "displayName": "",
            "replyToAddress": "",
            "signature": "",
            "isPrimary": True,
            "isDefault": True,
        },
        {
            "sendAsEmail": "Sales@acme.test",
            "displayName": "Acme Sales",
            "replyToAddress": "",
            "signature": "",
            "isDefault": False,
            "treatAsAlias": True,
            "verificationStatus": "accepted",
        },
        {
            "sendAsEmail": "pending@elsewhere.test",
            "displayName": "",
            "replyToAddress": "",
            "signature": "",
            "isDefault": False,
            "treatAsAlias": False,
            "verificationStatus": "pending",
        },
    ]
}

# GET /me?$select=mail,proxyAddresses,userPrincipalName, as Microsoft Graph answers it.
GRAPH_ADDRESSES = {
    "@odata.context": (
        "https://graph.microsoft.com/v1.0/$metadata#users(mail,proxyAddresses,userPrincipalName)"
        "/$entity"
    ),
    "mail": "Rep@acme.test",
    "proxyAddresses": [
        "SMTP:Rep@acme.test",
        "smtp:sales@acme.test",
        "smtp:rep@acme.onmicrosoft.com",
        "SIP:rep@acme.test",
        "X500:/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/"
        "cn=5f1a2b3c4d5e6f708192a3b4c5d6e7f8-rep",
    ],
    "userPrincipalName": "rep@acme.test",
}


def _flash(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _identity(tenant: Tenant, user: User, email: str, channel: Channel | None = None) -> Identity:
    return Identity.objects.create(
        tenant=tenant,
        user=user,
        email=email,
        name="Rick Rep",
        verified_at=timezone.now(),
        channel=channel,
    )


def _lists(channel: Channel, *aliases: str) -> Channel:
    """The provider lists these aliases for the mailbox (as a refresh would store them)."""
    channel.send_as = list(aliases)
    channel.save(update_fields=["send_as"])
    return channel


def _exchange(tenant: Tenant, owner: User) -> Channel:
    channel = gmail_channel(tenant, owner, token="graph-token")
    Channel.objects.filter(pk=channel.pk).update(
        kind=ChannelKind.EXCHANGE_ONLINE, config={"provider": "microsoft", "uid": "m-1"}
    )
    channel.refresh_from_db()
    return channel


# --- assignment -------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_mailbox_is_refused_for_an_identity_it_cannot_send_as_and_nothing_changes(
    acme: Tenant, rep_user: User, rep_client: Client
) -> None:
    gmail = gmail_channel(acme, rep_user)
    _lists(gmail, "sales@acme.test")
    other = _identity(acme, rep_user, "other@acme.test")
    audits = ChannelAuditEvent.objects.count()
    response = rep_client.post(
        reverse("channels:identity_channel", args=[other.pk]), {"channel": str(gmail.pk)}
    )
    assert response.status_code == 302
    assert _flash(response) == [
        "Gmail (rep@acme.test) cannot send as other@acme.test: the mailbox may send only as "
        "rep@acme.test or sales@acme.test. Add the address to the mailbox at your provider, "
        "then Refresh send-as addresses."
    ]
    other.refresh_from_db()
    assert other.channel is None
    assert ChannelAuditEvent.objects.count() == audits


@pytest.mark.django_db(transaction=True)
def test_an_alias_the_provider_lists_may_be_chosen_whatever_its_case(
    acme: Tenant, rep_user: User, rep_client: Client
) -> None:
    gmail = gmail_channel(acme, rep_user)
    _lists(gmail, "sales@acme.test")
    sales = _identity(acme, rep_user, "Sales@Acme.test")
    response = rep_client.post(
        reverse("channels:identity_channel", args=[sales.pk]), {"channel": str(gmail.pk)}
    )
    assert response.status_code == 302
    sales.refresh_from_db()
    assert sales.channel == gmail


def test_a_new_identity_gets_only_a_channel_that_may_send_as_it(
    acme: Tenant, rep_user: User, rep_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import transaction

    monkeypatch.setattr(transaction, "on_commit", lambda func, using=None, robust=False: func())
    gmail = gmail_channel(acme, rep_user)
    _lists(gmail, "sales@acme.test")
    url = reverse("channels:identity_add")
    response = rep_client.post(url, {"email": "other@acme.test", "name": "Rick"})
    assert any("None of your channels may send as other@acme.test" in m for m in _flash(response))
    assert Identity.objects.get(user=rep_user, email="other@acme.test").channel is None
    rep_client.post(url, {"email": "sales@acme.test", "name": "Sales"})
    assert Identity.objects.get(user=rep_user, email="sales@acme.test").channel == gmail


def test_a_new_identity_that_no_own_mailbox_may_send_as_gets_the_team_channel(
    acme: Tenant,
    rep_user: User,
    rep_client: Client,
    team_channel: Channel,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An address at the team's domain added by someone whose own mailbox is another address:
    the team's channel (which sends as anyone) carries it, instead of nothing."""
    from django.db import transaction

    from channels.routing import Source, route

    monkeypatch.setattr(transaction, "on_commit", lambda func, using=None, robust=False: func())
    gmail = gmail_channel(acme, rep_user)  # may send as rep@acme.test only
    rep_client.post(reverse("channels:identity_add"), {"email": "sales@acme.test", "name": "S"})
    identity = Identity.objects.get(user=rep_user, email="sales@acme.test")
    assert identity.channel == team_channel != gmail
    identity.verified_at = timezone.now()
    identity.save()
    assert route(user=rep_user, identity=identity, source=Source.WEB).can_send
    # Without a channel chosen, the route says to choose one, not to set up a team channel
    # that exists; and the card names its provider.
    Identity.objects.filter(pk=identity.pk).update(channel=None)
    identity.refresh_from_db()
    why = route(user=rep_user, identity=identity, source=Source.WEB).reason
    assert why == "Choose a channel for sales@acme.test on Delivery channels."
    page = rep_client.get(reverse("channels:overview")).content.decode()
    assert "until the list is read from Gmail)" in page


def test_a_first_mailbox_goes_only_to_the_identities_it_may_send_as(
    acme: Tenant, rep_user: User
) -> None:
    default = services.identity_ensure_default(user=rep_user, tenant=acme)
    other = _identity(acme, rep_user, "other@acme.test")
    gmail = services.channel_connect_oauth(
        tenant=acme,
        owner=rep_user,
        kind=ChannelKind.GMAIL,
        provider="google",
        uid="g-1",
        email="rep@acme.test",
        tokens={"access_token": "a", "refresh_token": "r"},
        expires_at=None,
        scopes="",
    )
    default.refresh_from_db()
    other.refresh_from_db()
    assert default.channel == gmail and other.channel is None
    # A custom SMTP channel may send as any identity.
    smtp = Channel.objects.create(tenant=acme, owner=rep_user, kind=ChannelKind.CUSTOM_SMTP)
    assert smtp.may_send_as("other@acme.test") and smtp.sendable_addresses == []


# --- sending ----------------------------------------------------------------------------------


@pytest.mark.django_db
@responses.activate
def test_mail_from_an_address_the_mailbox_may_not_send_as_is_held_before_any_call(
    acme: Tenant, rep_user: User, rep_client: Client, settings
) -> None:
    settings.MSC_GRAPH_URL = GRAPH
    send_mail = responses.post(f"{GRAPH}/v1.0/me/sendMail", status=202)
    exchange = _exchange(acme, rep_user)
    _lists(exchange, "sales@acme.test")
    sales = _identity(acme, rep_user, "sales@acme.test", exchange)
    message = queue_message(acme, rep_user, sales)
    # Then the alias is taken off the mailbox, and a refresh learns it.
    _lists(exchange)
    assert pipeline.send_message(message.pk) == "held:channel"
    assert send_mail.call_count == 0 and not responses.calls  # not even a token refresh
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED and message.hold == Hold.CHANNEL
    assert message.attempts == 0 and message.next_attempt_at is None
    assert message.detail_text == (
        "Not sent: Exchange Online (rep@acme.test) cannot send as sales@acme.test: the mailbox "
        "may send only as rep@acme.test. Add the address to the mailbox at your provider, then "
        "Refresh send-as addresses."
    )
    outbox = rep_client.get(reverse("sending:outbox")).content.decode()
    assert "cannot send as sales@acme.test" in outbox
    assert "Its channel is no longer available" not in outbox


@pytest.mark.django_db
@responses.activate
def test_an_alias_listed_by_graph_sends(acme: Tenant, rep_user: User, settings) -> None:
    settings.MSC_GRAPH_URL = GRAPH
    send_mail = responses.post(f"{GRAPH}/v1.0/me/sendMail", status=202)
    exchange = _exchange(acme, rep_user)
    _lists(exchange, "sales@acme.test")
    message = queue_message(acme, rep_user, _identity(acme, rep_user, "SALES@acme.test", exchange))
    assert pipeline.send_message(message.pk) == "sent"
    assert send_mail.call_count == 1
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


def test_an_alias_listed_by_gmail_sends_over_smtp(
    acme: Tenant, rep_user: User, certs: Certificates, settings
) -> None:
    with smtp_server(mode="starttls", cert=certs.trusted, tokens={"good-token"}) as gmail:
        settings.MSC_GMAIL_SMTP = f"localhost:{gmail.port}"
        channel = gmail_channel(acme, rep_user)
        _lists(channel, "sales@acme.test")
        sales = _identity(acme, rep_user, "sales@acme.test", channel)
        message = queue_message(acme, rep_user, sales)
        assert pipeline.send_message(message.pk) == "sent"
        # The alias leaves the list: the next message is held, and nothing reaches Gmail.
        second = queue_message(acme, rep_user, sales)
        _lists(channel)
        assert pipeline.send_message(second.pk) == "held:channel"
    assert len(gmail.received.messages) == 1
    assert message_from_bytes(gmail.received.messages[0]["data"])["From"].endswith(
        "<sales@acme.test>"
    )


def test_composing_through_an_identity_whose_mailbox_cannot_send_as_it_is_refused(
    acme: Tenant, rep_user: User
) -> None:
    from django.core.exceptions import ValidationError

    gmail = gmail_channel(acme, rep_user)
    # Chosen before the provider's list was known (or the alias was since removed).
    other = _identity(acme, rep_user, "other@acme.test", gmail)
    with pytest.raises(ValidationError, match=r"cannot send as other@acme\.test"):
        queue_message(acme, rep_user, other)
    assert not Message.objects.exists()


# --- reading the list from the provider -------------------------------------------------------


@responses.activate
def test_connecting_gmail_reads_its_send_as_aliases(
    google_configured: None,  # noqa: F811
    rep_client: Client,
    rep_user: User,
    acme: Tenant,
) -> None:
    services.identity_ensure_default(user=rep_user, tenant=acme)
    _identity(acme, rep_user, "other@acme.test")
    sales = _identity(acme, rep_user, "sales@acme.test")
    reauthenticate(rep_client)
    start = rep_client.post("/accounts/google/login/?process=connect&next=/channels/")
    state = parse_qs(urlparse(start["Location"]).query)["state"][0]
    responses.post(
        GOOGLE_TOKEN,
        json={"access_token": "ya29.a", "refresh_token": "1//r", "expires_in": 3599},
    )
    responses.get(
        GOOGLE_USERINFO, json={"id": "1", "email": "rep@acme.test", "verified_email": True}
    )
    send_as = responses.get(GMAIL_SEND_AS, json=SEND_AS_LIST)
    done = rep_client.get(
        "/accounts/google/login/callback/", {"state": state, "code": "c"}, follow=True
    )
    assert send_as.call_count == 1
    assert responses.calls[-1].request.headers["Authorization"] == "Bearer ya29.a"
    channel = Channel.objects.get(owner=rep_user, kind=ChannelKind.GMAIL)
    assert channel.send_as == ["sales@acme.test"]  # not the pending one
    assert channel.send_as_fetched_at is not None and channel.send_as_problem == ""
    routed = dict(Identity.objects.filter(user=rep_user).values_list("email", "channel_id"))
    assert routed == {
        "rep@acme.test": channel.pk,
        "sales@acme.test": channel.pk,
        "other@acme.test": None,
    }
    page = done.content.decode()
    assert "Sends as <strong>rep@acme.test, sales@acme.test</strong>" in page
    assert (
        "Gmail (rep@acme.test) may send only as rep@acme.test or sales@acme.test, so it was not "
        "chosen for other@acme.test" in page
    )
    sales.refresh_from_db()
    assert sales.channel == channel


@responses.activate
def test_connecting_exchange_online_reads_its_proxy_addresses(
    microsoft_configured: None,  # noqa: F811
    rep_client: Client,
    rep_user: User,
    settings,
) -> None:
    settings.MSC_GRAPH_URL = GRAPH
    reauthenticate(rep_client)
    start = rep_client.post("/accounts/microsoft/login/?process=connect&next=/channels/")
    state = parse_qs(urlparse(start["Location"]).query)["state"][0]
    responses.post(
        MICROSOFT_TOKEN,
        json={"access_token": "graph-access", "refresh_token": "r", "expires_in": 3600},
    )
    addresses = responses.get(GRAPH_ME, json=GRAPH_ADDRESSES)
    responses.get(
        f"{GRAPH}/v1.0/me",
        json={"id": "m-1", "mail": "rep@acme.test", "userPrincipalName": "rep@acme.test"},
    )
    rep_client.get("/accounts/microsoft/login/callback/", {"state": state, "code": "c"})
    assert addresses.call_count == 1
    channel = Channel.objects.get(owner=rep_user, kind=ChannelKind.EXCHANGE_ONLINE)
    # SMTP proxy addresses only (not SIP or X500), lower-cased, without its own address.
    assert channel.send_as == ["rep@acme.onmicrosoft.com", "sales@acme.test"]
    assert channel.may_send_as("Sales@ACME.test") and not channel.may_send_as("sip@acme.test")


@pytest.mark.django_db(transaction=True)
@responses.activate
def test_refresh_reads_the_list_again_and_a_failure_keeps_the_old_one(
    acme: Tenant, rep_user: User, rep_client: Client
) -> None:
    gmail = gmail_channel(acme, rep_user)
    url = reverse("channels:send_as_refresh", args=[gmail.pk])
    responses.get(GMAIL_SEND_AS, json=SEND_AS_LIST)
    response = rep_client.post(url)
    assert response.status_code == 302
    assert _flash(response) == ["Gmail (rep@acme.test) may send as rep@acme.test, sales@acme.test."]
    gmail.refresh_from_db()
    assert gmail.send_as == ["sales@acme.test"]
    fetched = gmail.send_as_fetched_at
    event = ChannelAuditEvent.objects.get(channel=gmail, action="send-as addresses refreshed")
    assert event.actor == rep_user and event.changes["send_as"]["to"] == ["sales@acme.test"]

    responses.replace(
        responses.GET,
        GMAIL_SEND_AS,
        status=403,
        json={
            "error": {
                "code": 403,
                "message": "Insufficient Permission",
                "status": "PERMISSION_DENIED",
            }
        },
    )
    response = rep_client.post(url)
    gmail.refresh_from_db()
    assert gmail.send_as == ["sales@acme.test"] and gmail.send_as_fetched_at == fetched
    assert gmail.send_as_problem == (
        "Could not refresh the send-as addresses: Gmail answered 403 Forbidden. "
        "The addresses last found are still used."
    )
    assert _flash(response)[-1] == f"Gmail (rep@acme.test): {gmail.send_as_problem}"
    page = rep_client.get(reverse("channels:overview")).content.decode()
    assert "Gmail answered 403 Forbidden. The addresses last found are still used." in page
    assert "Sends as <strong>rep@acme.test, sales@acme.test</strong>" in page


@pytest.mark.django_db(transaction=True)
def test_a_channel_that_sends_as_anyone_has_no_send_as_list(
    acme: Tenant, rep_user: User, rep_client: Client
) -> None:
    smtp = Channel.objects.create(tenant=acme, owner=rep_user, kind=ChannelKind.CUSTOM_SMTP)
    response = rep_client.post(reverse("channels:send_as_refresh", args=[smtp.pk]))
    assert response.status_code == 404
    assert rep_client.get(reverse("channels:send_as_refresh", args=[smtp.pk])).status_code == 405

"""Email Connection by OAuth. Google and Microsoft are faked at the HTTP boundary only
(``responses`` intercepts the requests library); everything on our side runs for real."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import responses
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from channels import oauth
from channels.kinds import ChannelKind
from channels.models import Channel, ChannelAuditEvent
from channels.oauth import OAuthNotConfigured, OAuthRevoked, fresh_access_token
from channels.transports import RETRY, SendFailure
from tests.channels.conftest import reauthenticate
from tests.mailservers import dripping_server

GOOGLE_TOKEN = "https://oauth2.googleapis.com/token"
GOOGLE_USERINFO = "https://www.googleapis.com/oauth2/v2/userinfo"


@pytest.fixture
def google_configured(settings) -> None:
    providers = {**settings.SOCIALACCOUNT_PROVIDERS}
    providers["google"] = {
        **providers["google"],
        "APPS": [
            {"client_id": "test-client.apps.googleusercontent.com", "secret": "shh", "key": ""}
        ],
    }
    settings.SOCIALACCOUNT_PROVIDERS = providers


@pytest.fixture
def microsoft_configured(settings) -> None:
    providers = {**settings.SOCIALACCOUNT_PROVIDERS}
    providers["microsoft"] = {
        **providers["microsoft"],
        "APPS": [{"client_id": "entra-app", "secret": "shh", "key": ""}],
    }
    settings.SOCIALACCOUNT_PROVIDERS = providers


def test_without_an_oauth_client_only_staff_are_told_how_to_configure_one(
    rep_client: Client, staff_client: Client, acme: Tenant
) -> None:
    page = rep_client.get(reverse("channels:overview")).content.decode()
    assert "GOOGLE_CLIENT_ID" not in page and "MICROSOFT_CLIENT_ID" not in page
    assert "/login/callback/" not in page
    assert "Gmail connections are not available on this server" in page
    assert "Exchange Online connections are not available on this server" in page
    assert "Ask msc-admin support to turn on Gmail connections." in page
    staff_client.post(reverse("staff:view_as", args=[acme.pk]))
    page = staff_client.get(reverse("channels:overview")).content.decode()
    assert "GOOGLE_CLIENT_ID" in page and "MICROSOFT_CLIENT_ID" in page
    assert "/accounts/google/login/callback/" in page


@responses.activate
def test_a_rep_connects_gmail_and_the_tokens_are_sealed(
    google_configured: None, rep_client: Client, rep_user: User
) -> None:
    reauthenticate(rep_client)
    page = rep_client.get(reverse("channels:overview")).content.decode()
    assert "Connect Gmail" in page
    start = rep_client.post("/accounts/google/login/?process=connect&next=/channels/")
    assert start.status_code == 302
    authorize = urlparse(start["Location"])
    assert authorize.netloc == "accounts.google.com"
    query = parse_qs(authorize.query)
    assert "https://mail.google.com/" in query["scope"][0]
    assert query["access_type"] == ["offline"]

    responses.post(
        GOOGLE_TOKEN,
        json={
            "access_token": "ya29.access-secret",
            "refresh_token": "1//refresh-secret",
            "expires_in": 3599,
            "token_type": "Bearer",
        },
    )
    responses.get(
        GOOGLE_USERINFO,
        json={
            "id": "10769150350006150715113082367",
            "email": "rep@acme.test",
            "verified_email": True,
            "name": "Rick Rep",
        },
    )
    done = rep_client.get(
        "/accounts/google/login/callback/", {"state": query["state"][0], "code": "auth-code"}
    )
    assert done.status_code == 302 and done["Location"] == "/channels/"

    channel = Channel.objects.get(owner=rep_user, kind=ChannelKind.GMAIL)
    assert channel.account_email == "rep@acme.test"
    assert channel.status == "active"
    assert "refresh-secret" not in channel.secret and "access-secret" not in channel.secret
    assert channel.read_secret() == {
        "access_token": "ya29.access-secret",
        "refresh_token": "1//refresh-secret",
    }
    assert channel.token_expires_at > timezone.now() + timedelta(minutes=50)
    event = ChannelAuditEvent.objects.get(channel=channel, action="created")
    assert "secret" not in str(event.changes).replace("(value not recorded)", "")
    assert "Connected as" in rep_client.get(reverse("channels:overview")).content.decode()


@pytest.mark.django_db
@responses.activate
def test_signing_in_with_google_is_refused(
    google_configured: None, client: Client, rep_user: User
) -> None:
    start = client.post("/accounts/google/login/?process=login")
    state = parse_qs(urlparse(start["Location"]).query)["state"][0]
    responses.post(GOOGLE_TOKEN, json={"access_token": "a", "expires_in": 3599})
    responses.get(
        GOOGLE_USERINFO, json={"id": "42", "email": "rep@acme.test", "verified_email": True}
    )
    done = client.get(
        "/accounts/google/login/callback/", {"state": state, "code": "c"}, follow=True
    )
    assert b"sign in with your email address and password" in done.content
    assert "_auth_user_id" not in client.session
    assert not Channel.objects.exists()


def _gmail(tenant: Tenant, owner: User, *, expires_in: timedelta) -> Channel:
    channel = Channel(
        tenant=tenant,
        owner=owner,
        kind=ChannelKind.GMAIL,
        account_email=owner.email,
        config={"provider": "google", "uid": "1", "scopes": ""},
        token_expires_at=timezone.now() + expires_in,
    )
    channel.set_secret({"access_token": "old-access", "refresh_token": "the-refresh"})
    channel.save()
    return channel


@responses.activate
def test_an_expired_token_is_refreshed_and_stored(
    google_configured: None, acme: Tenant, rep_user: User
) -> None:
    responses.post(GOOGLE_TOKEN, json={"access_token": "new-access", "expires_in": 3600})
    channel = _gmail(acme, rep_user, expires_in=timedelta(seconds=30))
    assert fresh_access_token(channel.pk) == "new-access"
    channel.refresh_from_db()
    assert channel.read_secret() == {"access_token": "new-access", "refresh_token": "the-refresh"}
    assert parse_qs(responses.calls[0].request.body)["grant_type"] == ["refresh_token"]
    # Still fresh: no second call.
    assert fresh_access_token(channel.pk) == "new-access"
    assert len(responses.calls) == 1


@responses.activate
def test_a_revoked_grant_marks_the_channel_and_tells_the_user(
    google_configured: None, acme: Tenant, rep_user: User, rep_client: Client
) -> None:
    responses.post(
        GOOGLE_TOKEN,
        status=400,
        json={"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
    )
    channel = _gmail(acme, rep_user, expires_in=timedelta(seconds=-5))
    with pytest.raises(OAuthRevoked):
        fresh_access_token(channel.pk)
    channel.refresh_from_db()
    assert channel.status == "needs_attention"
    assert "Reconnect it" in channel.status_message
    page = rep_client.get(reverse("channels:overview")).content.decode()
    assert "needs attention" in page and "Google no longer allows msc-admin" in page


@responses.activate
def test_without_an_oauth_client_a_due_refresh_says_who_can_fix_it(
    acme: Tenant, admin_user: User
) -> None:
    """No Microsoft app on this server (MICROSOFT_CLIENT_ID unset) and a token to refresh:
    not an IndexError, and not the user's grant either (the channel is left alone)."""
    channel = _gmail(acme, admin_user, expires_in=timedelta(seconds=-5))
    Channel.objects.filter(pk=channel.pk).update(
        kind=ChannelKind.EXCHANGE_ONLINE, config={"provider": "microsoft", "uid": "m-1"}
    )
    channel.refresh_from_db()
    with pytest.raises(OAuthNotConfigured, match="Microsoft sign-in is not configured") as missing:
        fresh_access_token(channel.pk)
    assert "MICROSOFT_CLIENT_ID and MICROSOFT_CLIENT_SECRET" in str(missing.value)
    with pytest.raises(SendFailure) as failure:
        channel.kind_spec.deliver(
            channel,
            sender=admin_user.email,
            recipient="a@b.test",
            data=b"x",
            on_handover=lambda: None,
        )
    assert failure.value.kind == RETRY and failure.value.text == str(missing.value)
    assert not responses.calls  # nothing was sent to Microsoft
    channel.refresh_from_db()
    assert channel.status == "active" and channel.status_message == ""
    assert channel.read_secret() == {"access_token": "old-access", "refresh_token": "the-refresh"}


@pytest.mark.django_db(transaction=True)
@responses.activate
def test_two_workers_never_refresh_the_same_grant_at_once(google_configured: None) -> None:
    from tests.factories import MembershipFactory

    user = MembershipFactory().user
    channel = _gmail(user.membership.tenant, user, expires_in=timedelta(seconds=-1))
    gate = threading.Barrier(2)
    results: list[str] = []
    overlapped = threading.Event()

    def token_once_the_other_worker_waits(request):
        # The first refresh holds the channel row: Google answers only once the second worker
        # is seen waiting for that lock, so the two refreshes really overlap.
        with connection.cursor() as cursor:  # this thread's connection, the one holding it
            deadline = time.monotonic() + 10
            while True:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted "
                    "AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
                )
                if cursor.fetchone()[0]:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError("the second worker never waited for the first")
                time.sleep(0.05)
        overlapped.set()
        return (200, {}, '{"access_token": "refreshed-once", "expires_in": 3600}')

    responses.add_callback(responses.POST, GOOGLE_TOKEN, callback=token_once_the_other_worker_waits)

    def worker() -> None:
        try:
            gate.wait()
            results.append(fresh_access_token(channel.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert overlapped.is_set()
    assert results == ["refreshed-once", "refreshed-once"]
    assert len(responses.calls) == 1


@responses.activate
def test_connecting_needs_a_fresh_password_confirmation(
    google_configured: None, rep_client: Client, rep_user: User
) -> None:
    page = rep_client.get(reverse("channels:overview")).content.decode()
    assert "Confirm your password to connect Gmail" in page
    # A crafted start without confirming: the grant is dropped and nothing is stored.
    start = rep_client.post("/accounts/google/login/?process=connect&next=/channels/")
    state = parse_qs(urlparse(start["Location"]).query)["state"][0]
    responses.post(
        GOOGLE_TOKEN,
        json={"access_token": "a-secret", "refresh_token": "r-secret", "expires_in": 3599},
    )
    responses.get(
        GOOGLE_USERINFO, json={"id": "7", "email": "rep@acme.test", "verified_email": True}
    )
    done = rep_client.get("/accounts/google/login/callback/", {"state": state, "code": "c"})
    assert done["Location"].startswith(reverse("account_reauthenticate"))
    assert not Channel.objects.exists()
    assert "r-secret" not in str(dict(rep_client.session))


MICROSOFT_TOKEN = "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
GRAPH = "https://graph.microsoft.com"


@responses.activate
def test_microsoft_is_asked_for_exactly_the_scopes_the_code_uses(
    microsoft_configured: None, rep_client: Client, rep_user: User, acme: Tenant, settings
) -> None:
    reauthenticate(rep_client)
    start = rep_client.post("/accounts/microsoft/login/?process=connect&next=/channels/")
    assert start.status_code == 302
    query = parse_qs(urlparse(start["Location"]).query)
    asked = set(query["scope"][0].split())
    assert asked == {"User.Read", "Mail.Send", "Mail.Read", "offline_access"}

    # Each is used. offline_access: the token answer carries a refresh token, which is kept.
    responses.post(
        MICROSOFT_TOKEN,
        json={
            "access_token": "graph-access",
            "refresh_token": "graph-refresh",
            "expires_in": 3600,
            "token_type": "Bearer",
            "scope": " ".join(sorted(asked)),
        },
    )
    # User.Read: allauth reads the mailbox's address from Graph's /me.
    responses.get(
        f"{GRAPH}/v1.0/me",
        json={"id": "m-1", "mail": "rep@acme.test", "userPrincipalName": "rep@acme.test"},
    )
    done = rep_client.get(
        "/accounts/microsoft/login/callback/", {"state": query["state"][0], "code": "auth-code"}
    )
    assert done.status_code == 302 and done["Location"] == "/channels/"
    channel = Channel.objects.get(owner=rep_user, kind=ChannelKind.EXCHANGE_ONLINE)
    assert channel.account_email == "rep@acme.test"
    assert channel.read_secret()["refresh_token"] == "graph-refresh"

    # Mail.Send: a message goes out through Graph's /me/sendMail with that token.
    from channels import services as channel_services
    from sending import pipeline
    from tests.sending.conftest import queue_message

    settings.MSC_GRAPH_URL = GRAPH
    responses.post(f"{GRAPH}/v1.0/me/sendMail", status=202)
    identity = channel_services.identity_ensure_default(user=rep_user, tenant=acme)
    identity.channel = channel
    identity.save()
    message = queue_message(acme, rep_user, identity)
    assert pipeline.send_message(message.pk) == "sent"
    used = [(call.request.method, urlparse(call.request.url).path) for call in responses.calls]
    assert used == [
        ("POST", "/organizations/oauth2/v2.0/token"),
        ("GET", "/v1.0/me"),
        ("GET", "/v1.0/me"),  # User.Read again: the addresses the mailbox may send as
        ("POST", "/v1.0/me/sendMail"),
    ]
    assert responses.calls[3].request.headers["Authorization"] == "Bearer graph-access"

    # Mail.Read: bounces are read through Graph with that same token (no second, IMAP, token).
    from bounces import inbox

    responses.get(
        f"{GRAPH}/v1.0/me/mailFolders/inbox/messages/delta",
        json={"value": [], "@odata.deltaLink": f"{GRAPH}/v1.0/me/messages/delta?$deltatoken=1"},
    )
    responses.get(
        f"{GRAPH}/v1.0/me/mailFolders/junkemail/messages/delta",
        json={"value": [], "@odata.deltaLink": f"{GRAPH}/v1.0/me/messages/delta?$deltatoken=2"},
    )
    assert inbox.scan(channel.pk).ok
    assert [urlparse(call.request.url).path for call in responses.calls[4:]] == [
        "/v1.0/me/mailFolders/inbox/messages/delta",
        "/v1.0/me/mailFolders/junkemail/messages/delta",
    ]
    assert {call.request.headers["Authorization"] for call in responses.calls[4:]} == {
        "Bearer graph-access"
    }


@pytest.mark.django_db(transaction=True)
def test_a_token_service_dripping_its_answer_is_cut_off_at_the_deadline(
    google_configured: None, acme: Tenant, rep_user: User, certs, settings, monkeypatch
) -> None:
    """The refresh runs under the channel's row lock: a token service that answers one byte
    just inside every read timeout must not hold it (and the send) for minutes."""
    settings.MSC_OUTBOUND_TIMEOUT = 1
    settings.MSC_OUTBOUND_DEADLINE = 2
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca_file))
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    body = b'{"access_token": "slow-access", "expires_in": 3600}'
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    channel = _gmail(acme, rep_user, expires_in=timedelta(seconds=-5))
    with dripping_server(
        answer % (len(body), body), every=0.5, cert=certs.trusted, after=b"\r\n\r\n"
    ) as google:
        monkeypatch.setattr(
            oauth, "token_url", lambda provider: f"https://localhost:{google.port}/t"
        )
        started = time.monotonic()
        with pytest.raises(SendFailure) as failure:
            channel.kind_spec.deliver(
                channel,
                sender=rep_user.email,
                recipient="a@b.test",
                data=b"x",
                on_handover=lambda: None,
            )
        took = time.monotonic() - started
    assert took < 3.5, took
    assert google.connections == 1 and google.dripped >= 3
    assert failure.value.kind == RETRY
    assert failure.value.text == (
        "Could not refresh the access token: "
        "Google's token service did not finish the conversation within 2 s."
    )
    channel.refresh_from_db()  # nothing half-stored, the lock released, the channel left alone
    assert channel.status == "active"
    assert channel.read_secret() == {"access_token": "old-access", "refresh_token": "the-refresh"}

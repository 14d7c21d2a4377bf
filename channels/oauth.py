"""Email Connection by OAuth: allauth does the consent dance; we keep the tokens, sealed.

allauth's social accounts are used only to *connect* a mailbox to a signed-in user; signing in
with Google or Microsoft is refused. Access tokens are refreshed under a row lock on the channel,
so two workers never refresh the same grant at once, and a revoked grant marks the channel
"needs attention" instead of failing sends one by one.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import requests
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp, SocialLogin
from allauth.socialaccount.signals import social_account_added, social_account_updated
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.dispatch import receiver
from django.http import Http404, HttpRequest
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from accounts.access import recently_authenticated
from accounts.models import Membership
from channels import kinds, services
from channels.models import Channel
from channels.transports.deadline import Deadline
from channels.transports.deadline import session as bounded_session
from msc_admin.stored import sentence

logger = logging.getLogger(__name__)

PROVIDER_NAMES = {"google": "Google", "microsoft": "Microsoft"}
REFRESH_MARGIN = timedelta(minutes=2)


def _providers() -> dict[str, Any]:
    providers: dict[str, Any] = settings.SOCIALACCOUNT_PROVIDERS
    return providers


def token_url(provider: str) -> str:
    if provider == "google":
        return "https://oauth2.googleapis.com/token"
    tenant = _providers()["microsoft"].get("TENANT", "organizations")
    return f"https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"


class TokenServiceTimeout(requests.Timeout):
    """The provider's token service did not answer within the outbound deadline."""


def refresh_problem(error: requests.RequestException) -> str:
    """What a failed token refresh (not a refusal) tells the user."""
    if isinstance(error, TokenServiceTimeout):
        return f"Could not refresh the access token: {error}"
    return f"Could not refresh the access token ({error.__class__.__name__})"


class OAuthRevoked(Exception):
    """The provider no longer accepts the grant; the user must reconnect. ``text`` says so as a
    sentence (``msc_admin.stored``), which the channel stores and each reader reads in theirs."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class OAuthNotConfigured(Exception):
    """This server has no OAuth client for the provider, so no token can be refreshed. Not the
    user's doing: the channel is not marked, and the words say who can fix it."""

    def __init__(self, provider: str) -> None:
        name = PROVIDER_NAMES.get(provider, provider)
        prefix = provider.upper()
        super().__init__(
            f"{name} sign-in is not configured on this server, so msc-admin cannot renew its "
            f"access to this mailbox. Ask whoever runs msc-admin to set {prefix}_CLIENT_ID and "
            f"{prefix}_CLIENT_SECRET."
        )


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def get_app(self, request: HttpRequest | None, provider: str, client_id: str | None = None):
        """A provider without a configured client id and secret is not offered: its routes
        answer 404 (the channels page explains how to configure one) rather than 500."""
        try:
            return super().get_app(request, provider, client_id)
        except SocialApp.DoesNotExist:
            raise Http404(f"{provider} is not configured") from None

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return False

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        if sociallogin.state.get("process") != "connect" or not request.user.is_authenticated:
            messages.error(
                request,
                _(
                    "Google and Microsoft accounts connect a mailbox for sending; sign in with "
                    "your email address and password, then connect from Delivery channels."
                ),
            )
            raise ImmediateHttpResponse(redirect("account_login"))
        if not getattr(request, "membership", None):
            raise ImmediateHttpResponse(redirect("home"))
        if not recently_authenticated(request):
            # Connecting a mailbox changes credentials: it needs a fresh password confirmation.
            # The grant just received is dropped rather than parked in the session.
            messages.warning(request, _("Confirm your password, then connect the mailbox again."))
            raise ImmediateHttpResponse(
                redirect(f"{reverse('account_reauthenticate')}?next={reverse('channels:overview')}")
            )

    def get_connect_redirect_url(self, request: HttpRequest, socialaccount: Any) -> str:
        return reverse("channels:overview")


def _email_of(sociallogin: SocialLogin) -> str:
    data = sociallogin.account.extra_data or {}
    for key in ("email", "mail", "userPrincipalName"):
        if data.get(key):
            return str(data[key]).lower()
    return sociallogin.user.email if sociallogin.user else ""


@receiver(social_account_added)
@receiver(social_account_updated)
def store_connection(
    sender: Any, request: HttpRequest, sociallogin: SocialLogin, **kwargs: Any
) -> None:
    provider = sociallogin.account.provider
    kind = kinds.for_provider(provider)
    user = sociallogin.user
    token = sociallogin.token
    if kind is None or token is None or user is None or not user.pk:
        return
    membership = Membership.objects.filter(user=user).select_related("tenant").first()
    if membership is None:
        return
    scopes = " ".join(_providers()[provider]["SCOPE"])
    channel = services.channel_connect_oauth(
        tenant=membership.tenant,
        owner=user,
        kind=kind.value,
        provider=provider,
        uid=str(sociallogin.account.uid),
        email=_email_of(sociallogin),
        tokens={"access_token": token.token, "refresh_token": token.token_secret or ""},
        expires_at=token.expires_at,
        scopes=scopes,
    )
    _learn_send_as(request, channel)


def _learn_send_as(request: HttpRequest, channel: Channel) -> None:
    """Just connected: ask the provider which addresses the mailbox may send as, give it the
    identities it may send as (when it is the user's first channel), and tell the user about
    the ones it cannot."""
    refreshed = services.channel_refresh_send_as(channel=channel, actor=channel.owner)
    if refreshed.problem:
        messages.warning(request, f"{channel.label}: {refreshed.problem}")
    unrouted = services.identities_take_first_channel(channel)
    if unrouted:
        may = " or ".join(refreshed.addresses)
        messages.info(
            request,
            f"{channel.label} may send only as {may}, so it was not chosen for "
            f"{', '.join(unrouted)}: choose a channel for "
            f"{'it' if len(unrouted) == 1 else 'them'} under Identities.",
        )


# Microsoft tokens are issued per resource: the Graph token sends, an Outlook one reads by IMAP.
# The same refresh token gets both. Google's one token covers SMTP and IMAP.
IMAP_SCOPES = {"microsoft": "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"}
SEND, IMAP = "send", "imap"


def fresh_access_token(channel_id: int, purpose: str = SEND) -> str:
    """A valid access token for an OAuth channel, refreshing it if it is about to expire.

    ``purpose`` is ``send`` or ``imap`` (reading bounces). The refresh happens under
    ``SELECT … FOR UPDATE`` on the channel row: a second worker waits, then finds the token fresh
    and uses it. Raises ``OAuthRevoked`` when the grant is gone, ``OAuthNotConfigured`` when a
    refresh is due and this server has no OAuth client for the provider.
    """
    with transaction.atomic():
        channel = Channel.objects.select_for_update().get(pk=channel_id)
        tokens = channel.read_secret()
        scope = IMAP_SCOPES.get(channel.oauth.provider) if purpose == IMAP else None
        prefix = "imap_" if scope else ""
        expires = channel.token_expires_at
        if scope:
            stamp = tokens.get("imap_expires_at")
            expires = datetime.fromisoformat(stamp) if stamp else None
        token = tokens.get(f"{prefix}access_token")
        if token and expires and expires - timezone.now() > REFRESH_MARGIN:
            return str(token)
        data = _refresh(channel, tokens, scope) if tokens.get("refresh_token") else None
        if data is not None:
            tokens[f"{prefix}access_token"] = data["access_token"]
            if data.get("refresh_token"):
                tokens["refresh_token"] = data["refresh_token"]
            expires = timezone.now() + timedelta(seconds=int(data.get("expires_in", 3600)))
            fields = ["secret", "updated_at"]
            if scope:
                tokens["imap_expires_at"] = expires.isoformat()
            else:
                channel.token_expires_at = expires
                fields.append("token_expires_at")
            channel.set_secret(tokens)
            channel.save(update_fields=fields)
            return str(data["access_token"])
    name = PROVIDER_NAMES.get(channel.oauth.provider, channel.oauth.provider)
    if scope:
        # Refused for reading only (e.g. IMAP not consented in the customer's Entra ID): sending
        # may still work, so the channel is not marked; the scan reports it.
        raise OAuthRevoked(
            f"{name} did not allow reading {channel.account_email or 'this mailbox'} by IMAP. "
            "An Entra ID admin must grant the app the IMAP.AccessAsUser.All permission."
        )
    # Revoked: recorded after the lock's transaction, so the mark is not rolled back.
    message = (
        sentence(
            gettext_noop(
                "%(provider)s no longer allows msc-admin to use %(mailbox)s (access was revoked "
                "or expired). Reconnect it to resume sending."
            ),
            provider=name,
            mailbox=channel.account_email,
        )
        if channel.account_email
        else sentence(
            gettext_noop(
                "%(provider)s no longer allows msc-admin to use this mailbox (access was "
                "revoked or expired). Reconnect it to resume sending."
            ),
            provider=name,
        )
    )
    services.channel_mark_needs_attention(channel=channel, message=message)
    raise OAuthRevoked(message)


def _refresh(
    channel: Channel, tokens: dict[str, Any], scope: str | None = None
) -> dict[str, Any] | None:
    """POST the refresh grant. None when the provider says the grant is no longer valid."""
    provider = channel.oauth.provider
    apps = _providers()[provider]["APPS"]
    if not apps:
        raise OAuthNotConfigured(provider)
    app = apps[0]
    grant = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": app["client_id"],
        "client_secret": app["secret"],
    }
    if scope:
        grant["scope"] = scope
    # The whole token request keeps to the outbound deadline: the provider answering one byte
    # at a time would otherwise hold the channel's row lock for as long as it likes.
    deadline = Deadline()
    try:
        with bounded_session(deadline) as session:
            response = session.post(token_url(provider), data=grant, timeout=deadline.timeout())
            response.content  # noqa: B018 - read the body inside the deadline
    except (requests.RequestException, OSError) as problem:
        if deadline.expired:
            name = PROVIDER_NAMES.get(provider, provider)
            raise TokenServiceTimeout(deadline.missed(f"{name}'s token service")) from None
        if isinstance(problem, requests.RequestException):
            raise
        raise requests.ConnectionError(str(problem)) from problem
    if response.status_code in (400, 401):
        try:
            error = response.json().get("error", "")
        except ValueError:
            error = ""
        if error in ("invalid_grant", "unauthorized_client", "invalid_client"):
            return None
    response.raise_for_status()
    return dict(response.json())

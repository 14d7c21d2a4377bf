"""Hand one MIME message to a channel: picks the transport and its credentials by kind.

Custom SMTP, MSC servers and Exchange on-premises speak SMTP with a password; Gmail speaks SMTP
with XOAUTH2; Exchange Online goes through Microsoft Graph. Every failure is a ``SendFailure``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from django.conf import settings

from channels.kinds import ChannelKind, Security, SmtpConfig
from channels.models import Channel
from channels.transports import AUTH, RETRY, Handover, SendFailure, graph, smtp
from msc_admin.crypto import SecretUnavailable


def host_port(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":") if ":" in value else (value, "", "")
    return host, int(port) if port else default_port


def gmail_smtp() -> SmtpConfig:
    host, port = host_port(settings.MSC_GMAIL_SMTP, 465)
    security = Security.SSL_TLS if port == 465 else Security.STARTTLS
    return SmtpConfig(host=host, port=port, security=security)


def legacy_relay(recipient: str) -> tuple[SmtpConfig, str]:
    """A server of the staff's MSC pool (``staff.MscServer``) and its password."""
    from staff.services import pick_server

    server = pick_server(recipient)
    if server is None:
        raise SendFailure(RETRY, "No MSC server is available right now.")
    try:
        return server.config, server.password()
    except SecretUnavailable:
        raise SendFailure(RETRY, "The MSC server's password cannot be read right now.") from None


def onprem_smtp(channel: Channel) -> SmtpConfig:
    """Exchange on-premises takes authenticated client submission on 587 at its CAS host."""
    config = channel.exchange
    if config.server_url:
        host = urlsplit(config.server_url).hostname or ""
    else:
        host = "autodiscover." + config.email.rpartition("@")[2]
    return SmtpConfig(
        host=host,
        port=587,
        security=Security.STARTTLS,
        auth_method="LOGIN",
        username=config.username,
    )


def _password(channel: Channel) -> str:
    try:
        return str(channel.read_secret().get("password", ""))
    except SecretUnavailable:
        raise SendFailure(
            AUTH, "The stored password cannot be decrypted. Enter it again and save."
        ) from None


def _access_token(channel: Channel) -> str:
    from channels.oauth import (
        OAuthNotConfigured,
        OAuthRevoked,
        fresh_access_token,
        refresh_problem,
    )

    try:
        return fresh_access_token(channel.pk)
    except OAuthRevoked as revoked:
        raise SendFailure(AUTH, str(revoked)) from None
    except OAuthNotConfigured as missing:
        # The server's configuration, not the user's grant: tried again later, channel unmarked.
        raise SendFailure(RETRY, str(missing)) from None
    except SecretUnavailable:
        raise SendFailure(AUTH, "The stored tokens cannot be decrypted; reconnect.") from None
    except requests.RequestException as error:
        raise SendFailure(RETRY, f"{refresh_problem(error)}.") from None


def deliver(
    channel: Channel, *, sender: str, recipient: str, data: bytes, on_handover: Handover
) -> str:
    kind = channel.kind
    if kind == ChannelKind.EXCHANGE_ONLINE:
        return graph.send_mime(token=_access_token(channel), data=data, on_handover=on_handover)
    oauth = None
    if kind == ChannelKind.GMAIL:
        config, password = gmail_smtp(), ""
        oauth = smtp.XOAuth2(channel.account_email, _access_token(channel))
    elif kind == ChannelKind.MSC_LEGACY:
        config, password = legacy_relay(recipient)
    elif kind == ChannelKind.EXCHANGE_ONPREM:
        config, password = onprem_smtp(channel), _password(channel)
    else:
        config, password = channel.smtp, _password(channel)
    return smtp.send_mime(
        config,
        password,
        sender=sender,
        recipient=recipient,
        data=data,
        on_handover=on_handover,
        oauth=oauth,
    )

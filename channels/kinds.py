"""Typed per-kind channel settings, stored in ``Channel.config`` (secrets live apart, sealed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Self

from django.db import models


class ChannelKind(models.TextChoices):
    GMAIL = "gmail", "Gmail (Email Connection)"
    EXCHANGE_ONLINE = "exchange_online", "Exchange Online / Office 365 (Email Connection)"
    EXCHANGE_ONPREM = "exchange_onprem", "Exchange on-premises (Email Connection)"
    CUSTOM_SMTP = "custom_smtp", "Custom SMTP"
    MSC_LEGACY = "msc_legacy", "MSC servers (legacy)"


# A tenant moved off legacy ToutApp never sees "MSC" again: its retired MSC channel, and what
# was written about it, are shown in these words.
RETIRED_MSC_LABEL = "Shared legacy servers (retired)"


def retired_msc_wording(text: str) -> str:
    """``text`` as a tenant moved off legacy ToutApp reads it."""
    return text.replace(ChannelKind.MSC_LEGACY.label, RETIRED_MSC_LABEL).replace(
        "MSC server", "shared legacy server"
    )


OAUTH_KINDS = frozenset({ChannelKind.GMAIL, ChannelKind.EXCHANGE_ONLINE})
EMAIL_CONNECTION_KINDS = OAUTH_KINDS | {ChannelKind.EXCHANGE_ONPREM}


class Security(models.TextChoices):
    STARTTLS = "starttls", "STARTTLS (usually port 587)"
    SSL_TLS = "ssl_tls", "SSL/TLS from the first byte (usually port 465)"


class AuthMethod(models.TextChoices):
    PLAIN = "PLAIN", "PLAIN"
    LOGIN = "LOGIN", "LOGIN"
    CRAM_MD5 = "CRAM-MD5", "CRAM-MD5"


class _Config:
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class SmtpConfig(_Config):
    host: str = ""
    port: int = 587
    security: str = Security.STARTTLS
    auth_method: str = AuthMethod.PLAIN
    username: str = ""
    sending_domain: str = ""


@dataclass(frozen=True)
class ExchangeOnPremConfig(_Config):
    server_url: str = ""  # https://mail.example.com/EWS/Exchange.asmx, or "" with autodiscover
    autodiscover: bool = False
    username: str = ""
    email: str = ""
    daily_limit: int | None = None  # set by the customer's IT; entered by the admin


@dataclass(frozen=True)
class OAuthConfig(_Config):
    provider: str = ""  # allauth provider id: google / microsoft
    uid: str = ""  # the provider's account id
    scopes: str = ""
    trial: bool = False  # a Google Workspace trial account: 500 messages a day, not 2,000

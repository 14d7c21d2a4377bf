"""The stored kind values and the typed per-kind settings, stored in ``Channel.config`` (secrets
live apart, sealed).

Django only: the transports and the models import this module, and the kind modules import
them, so nothing here may import the rest of ``channels``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Self

from django.db import models
from django.utils.translation import gettext_lazy as _


class ChannelKind(models.TextChoices):
    """The value stored in ``Channel.kind``. What each kind does is its module's ``Kind``,
    found with ``channels.kinds.kind_of``."""

    GMAIL = "gmail", _("Gmail (Email Connection)")
    EXCHANGE_ONLINE = "exchange_online", _("Exchange Online / Office 365 (Email Connection)")
    EXCHANGE_ONPREM = "exchange_onprem", _("Exchange on-premises (Email Connection)")
    CUSTOM_SMTP = "custom_smtp", _("Custom SMTP")
    MSC_LEGACY = "msc_legacy", _("MSC servers (legacy)")


class Security(models.TextChoices):
    """The choices' labels explain them in a form; ``SECURITY_NAMES`` name them elsewhere."""

    STARTTLS = "starttls", _("STARTTLS (usually port 587)")
    SSL_TLS = "ssl_tls", _("SSL/TLS from the first byte (usually port 465)")


# What tables, cards and logs show for a Security value.
SECURITY_NAMES: dict[str, str] = {Security.STARTTLS: "STARTTLS", Security.SSL_TLS: "SSL/TLS"}


class AuthMethod(models.TextChoices):
    PLAIN = "PLAIN", "PLAIN"
    LOGIN = "LOGIN", "LOGIN"
    CRAM_MD5 = "CRAM-MD5", "CRAM-MD5"


class Reading(models.TextChoices):
    """How an OAuth mailbox is read for bounces (``bounces.reading``): through the provider's
    API (the default) or, where the tenant admin chooses it, by IMAP."""

    API = "api", _("The provider's API")
    IMAP = "imap", "IMAP"


class Config:
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class SmtpConfig(Config):
    host: str = ""
    port: int = 587
    security: str = Security.STARTTLS
    auth_method: str = AuthMethod.PLAIN
    username: str = ""
    sending_domain: str = ""
    # Optional limits of the ESP plan, set by the admin (custom SMTP only); None: no limit.
    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = None

    def connection(self) -> dict[str, Any]:
        """The settings that decide how the server is reached (not how much is sent)."""
        return {k: v for k, v in self.to_dict().items() if k not in SMTP_LIMITS}


SMTP_LIMITS = ("per_minute", "per_hour", "per_day")


@dataclass(frozen=True)
class ExchangeOnPremConfig(Config):
    server_url: str = ""  # https://mail.example.com/EWS/Exchange.asmx, or "" with autodiscover
    autodiscover: bool = False
    username: str = ""
    email: str = ""
    daily_limit: int | None = None  # set by the customer's IT; entered by the admin


@dataclass(frozen=True)
class OAuthConfig(Config):
    provider: str = ""  # allauth provider id: google / microsoft
    uid: str = ""  # the provider's account id
    scopes: str = ""
    trial: bool = False  # a Google Workspace trial account: 500 messages a day, not 2,000
    demo: bool = False  # the embedded demo's placeholder, not a real sign-in (channels.demo)
    # How bounces are read: Reading.API or .IMAP as the tenant admin chose, "" for the default
    # (the API, once the mailbox granted what it needs: ``bounces.reading.granted``).
    reading: str = ""

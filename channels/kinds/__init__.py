"""The registry of channel kinds: one module per kind, one line each in ``KINDS``.

Code outside this package asks the kind (``channel.kind_spec.deliver(...)``,
``.limits(channel)``, ``.scans_inbox``) or selects kinds by what they are
(``values(scans_inbox=True)``); it does not branch on which kind a channel is.
"""

from __future__ import annotations

from typing import Any, Protocol

from django.utils.translation import gettext_lazy as _

from channels.kinds import custom_smtp, exchange_online, exchange_onprem, gmail, msc_legacy
from channels.kinds.base import Card, Kind, Rule, SendAsUnavailable
from channels.kinds.config import (
    SECURITY_NAMES,
    AuthMethod,
    ChannelKind,
    ExchangeOnPremConfig,
    OAuthConfig,
    Security,
    SmtpConfig,
)
from channels.kinds.msc_legacy import RETIRED_MSC_LABEL, RETIRED_WORDING, retired_msc_wording

__all__ = [
    "KINDS",
    "RETIRED_MSC_LABEL",
    "RETIRED_WORDING",
    "SECURITY_NAMES",
    "AuthMethod",
    "Card",
    "ChannelKind",
    "ExchangeOnPremConfig",
    "Kind",
    "OAuthConfig",
    "Rule",
    "Security",
    "SendAsUnavailable",
    "SmtpConfig",
    "catalogue",
    "for_provider",
    "kind_of",
    "offered",
    "retired_msc_wording",
    "values",
]

# In the order the pages list them.
KINDS: dict[str, Kind] = {
    kind.value: kind
    for kind in (
        gmail.KIND,
        exchange_online.KIND,
        exchange_onprem.KIND,
        custom_smtp.KIND,
        msc_legacy.KIND,
    )
}
if set(KINDS) != set(ChannelKind.values):  # pragma: no cover - a kind added half-way
    raise RuntimeError("channels.kinds.KINDS and ChannelKind must list the same kinds")

# Not a kind: explained on the support matrix so that nobody looks for it.
MARKETO = Card(
    key="marketo",
    name=_("Marketo email servers"),
    summary=_(
        "Marketo email servers cannot send this sales email: they are built for bulk "
        "marketing mail, and one-to-one sales email sent through them reaches fewer inboxes."
    ),
    authentication="—",
    throttling="—",
    bounce_tracking="—",
    selectable=False,
)


class _HasKind(Protocol):
    kind: str


def kind_of(value: str | _HasKind) -> Kind:
    """The kind of a stored value, or of a channel."""
    return KINDS[value if isinstance(value, str) else value.kind]


def values(**wanted: Any) -> list[str]:
    """The stored values of the kinds whose attributes have the given values, for queries:
    ``Channel.objects.filter(kind__in=values(scans_inbox=True))``."""
    return [
        kind.value
        for kind in KINDS.values()
        if all(getattr(kind, name) == value for name, value in wanted.items())
    ]


def for_provider(provider: str) -> Kind | None:
    """The kind a mailbox connected through this allauth provider becomes."""
    return next((k for k in KINDS.values() if k.oauth_provider == provider), None)


def offered(*, legacy_toutapp: bool) -> list[Kind]:
    """The kinds a tenant may see. Legacy MSC servers exist only for legacy ToutApp tenants."""
    return [kind for kind in KINDS.values() if legacy_toutapp or not kind.legacy_only]


def catalogue(*, legacy_toutapp: bool) -> list[Card]:
    """The support matrix a tenant sees: its kinds' cards, then what is not offered."""
    return [kind.card for kind in offered(legacy_toutapp=legacy_toutapp)] + [MARKETO]

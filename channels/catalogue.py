"""What each delivery channel kind is and supports, as the settings pages explain it.

Typed, one entry per kind; the pages render from this so the support matrix has one source.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelKind:
    key: str
    name: str
    summary: str
    authentication: str  # who owns SPF/DKIM
    throttling: str
    bounce_tracking: str
    recommended: bool = False
    legacy_only: bool = False
    selectable: bool = True
    warning: str = ""


KINDS: tuple[ChannelKind, ...] = (
    ChannelKind(
        key="gmail",
        name="Email Connection: Gmail",
        summary="Each rep connects their own Google Workspace mailbox with OAuth.",
        authentication="SPF and DKIM are your IT team's, on your own domain.",
        throttling="On by default; Gmail allows 2,000 messages a day (500 for trial accounts).",
        bounce_tracking="On: bounces are read from the sender's own inbox.",
        recommended=True,
    ),
    ChannelKind(
        key="exchange_online",
        name="Email Connection: Exchange Online / Office 365",
        summary="Each rep connects their Microsoft 365 mailbox with OAuth.",
        authentication="SPF and DKIM are your IT team's, on your own domain.",
        throttling="On by default; 10,000 recipients a day and 30 messages a minute.",
        bounce_tracking="On: bounces are read from the sender's own inbox.",
        recommended=True,
    ),
    ChannelKind(
        key="exchange_onprem",
        name="Email Connection: Exchange on-premises (2013/2016)",
        summary="Server URL (or Autodiscover) and credentials. Exchange Hybrid is not supported.",
        authentication="SPF and DKIM are your IT team's.",
        throttling="Sending limits are set by your IT team.",
        bounce_tracking="Not supported for Exchange on-premises.",
    ),
    ChannelKind(
        key="custom_smtp",
        name="Custom SMTP (SendGrid, SparkPost, …)",
        summary="Your own SMTP relay, for yourself or, set by an admin, for the whole team.",
        authentication="SPF and DKIM are configured at your email service provider.",
        throttling="Never throttled by msc-admin; your provider's limits apply.",
        bounce_tracking="Through your provider's event webhooks (SendGrid, SparkPost).",
    ),
    ChannelKind(
        key="msc_legacy",
        name="MSC servers (legacy)",
        summary="The shared server pool kept for legacy ToutApp customers.",
        authentication="No DKIM and no SPF for your domain.",
        throttling="Shared pool limits.",
        bounce_tracking="Limited.",
        legacy_only=True,
        warning=(
            "Mail from the shared MSC servers is not signed with DKIM nor covered by your SPF "
            "record, so more of it lands in spam. Connect Gmail or Exchange instead."
        ),
    ),
    ChannelKind(
        key="marketo",
        name="Marketo email servers",
        summary=(
            "Marketo email servers do not integrate with Sales Connect: they are built for bulk "
            "marketing mail and give lower success for one-to-one sales email."
        ),
        authentication="—",
        throttling="—",
        bounce_tracking="—",
        selectable=False,
    ),
)


def kinds_for(*, legacy_toutapp: bool) -> list[ChannelKind]:
    """The kinds a tenant may see. Legacy MSC servers exist only for legacy ToutApp tenants."""
    return [kind for kind in KINDS if legacy_toutapp or not kind.legacy_only]

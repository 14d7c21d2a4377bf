"""Email Connection: Exchange Online / Office 365. Each rep connects their Microsoft 365 mailbox
by OAuth; mail goes out through Microsoft Graph ``sendMail``, bounces are read from the same
mailbox through Graph (``bounces.reading``), or over IMAP (with an Outlook token from the same
grant) where the tenant admin chooses it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.formats import number_format
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from channels.kinds.base import (
    DAY,
    Card,
    Kind,
    Rule,
    SendAsUnavailable,
    access_token,
    oauth_token_for_reading,
    provider_json,
    rolling,
)
from channels.kinds.config import ChannelKind, OAuthConfig

if TYPE_CHECKING:
    from channels.models import Channel
    from channels.transports import Handover

DAILY = 10_000  # recipients; one per message here
PER_MINUTE = 30
# The signed-in mailbox's addresses (User.Read): ``mail`` is its primary SMTP address and
# ``proxyAddresses`` ("SMTP:primary", "smtp:alias", "SIP:…", "X500:…") its others; only the
# SMTP ones are addresses it can send as.
ME_ADDRESSES = "/v1.0/me?$select=mail,proxyAddresses,userPrincipalName"

# What the channel catalogue and its support table say about bounces.
READING = _(
    "On: the Inbox and Junk Email are read through Microsoft Graph"
    " (works with IMAP switched off), or by IMAP if your admin chooses."
)


class ExchangeOnline(Kind):
    value = ChannelKind.EXCHANGE_ONLINE
    card = Card(
        key=ChannelKind.EXCHANGE_ONLINE,
        name=_("Email Connection: Exchange Online / Office 365"),
        summary=_("Each rep connects their Microsoft 365 mailbox with OAuth."),
        authentication=_("SPF and DKIM are your IT team's, on your own domain."),
        throttling=_("On by default; 10,000 recipients in any 24 hours and 30 messages a minute."),
        bounce_tracking=READING,
        recommended=True,
    )
    staff_label = "Exchange"
    short_label = "Exchange Online"
    overview_template = "channels/kinds/exchange_online.html"
    settings_type = OAuthConfig
    oauth_provider = "microsoft"
    email_connection = True
    scans_inbox = True
    reading_api = "Microsoft Graph"
    imap_setting = "MSC_OUTLOOK_IMAP"
    plugin = "o365_plugin"
    restricts_senders = True

    def limits(self, channel: Channel) -> list[Rule]:
        # Exchange Online counts its recipient limit over the last 24 hours, not per day.
        label = gettext("Exchange Online limit: %(n)s recipients in 24 hours") % {
            "n": number_format(DAILY, force_grouping=True)
        }
        minute = gettext("Exchange Online: %(n)s per minute") % {"n": PER_MINUTE}
        return [
            Rule("minute", PER_MINUTE, 60, True, minute),
            rolling("day", DAILY, DAY, label),
        ]

    def provider(self, channel: Channel) -> str:
        return "Exchange Online"

    def send_as(self, channel: Channel) -> list[str]:
        token = oauth_token_for_reading(channel)
        url = settings.MSC_GRAPH_URL.rstrip("/") + ME_ADDRESSES
        answer = provider_json(url, token=token, who="Microsoft Graph")
        proxies = answer.get("proxyAddresses") or []
        if not isinstance(proxies, list):
            raise SendAsUnavailable("Microsoft Graph's answer listed no addresses.")
        found = [str(answer["mail"]).strip().lower()] if answer.get("mail") else []
        for proxy in proxies:
            kind, _, address = str(proxy).partition(":")
            if kind.lower() == "smtp" and address.strip():
                found.append(address.strip().lower())
        if not found:
            raise SendAsUnavailable("Microsoft Graph's answer listed no email address.")
        return list(dict.fromkeys(found))

    def deliver(
        self, channel: Channel, *, sender: str, recipient: str, data: bytes, on_handover: Handover
    ) -> str:
        from channels.transports import graph

        return graph.send_mime(
            token=access_token(channel), data=data, on_handover=on_handover, reuse=channel.pk
        )


KIND = ExchangeOnline()

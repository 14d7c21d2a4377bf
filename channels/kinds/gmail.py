"""Email Connection: Gmail. Each rep connects their Google Workspace mailbox by OAuth; mail
goes out over SMTP with XOAUTH2, bounces are read from the same mailbox through the Gmail API
(``bounces.reading``), or over IMAP where the tenant admin chooses it."""

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
    host_port,
    oauth_token_for_reading,
    provider_json,
    rolling,
)
from channels.kinds.config import ChannelKind, OAuthConfig, Security, SmtpConfig

if TYPE_CHECKING:
    from channels.models import Channel
    from channels.transports import Handover

# The provider table of the product brief. Recipients per message are 1 here: one message, one
# person, so a recipient cap and a message cap are the same count.
DAILY = 2_000
TRIAL_DAILY = 500
PER_SECOND = 2
# users.settings.sendAs.list: the primary address and the custom "from" aliases. The OAuth scope
# asked for (https://mail.google.com/) covers it.
GMAIL_API = "https://gmail.googleapis.com"
SEND_AS_PATH = "/gmail/v1/users/me/settings/sendAs"

# What the channel catalogue and its support table say about bounces.
READING = _(
    "On: the Inbox and Spam are read through the Gmail API"
    " (works with IMAP switched off), or by IMAP if your admin chooses."
)


def gmail_smtp() -> SmtpConfig:
    host, port = host_port(settings.MSC_GMAIL_SMTP, 465)
    security = Security.SSL_TLS if port == 465 else Security.STARTTLS
    return SmtpConfig(host=host, port=port, security=security)


class Gmail(Kind):
    value = ChannelKind.GMAIL
    card = Card(
        key=ChannelKind.GMAIL,
        name=_("Email Connection: Gmail"),
        summary=_("Each rep connects their own Google Workspace mailbox with OAuth."),
        authentication=_("SPF and DKIM are your IT team's, on your own domain."),
        throttling=_(
            "On by default; Gmail allows 2,000 messages in any 24 hours (500 for trial accounts)."
        ),
        bounce_tracking=READING,
        recommended=True,
    )
    staff_label = "Gmail"
    short_label = "Gmail"
    overview_template = "channels/kinds/gmail.html"
    settings_type = OAuthConfig
    oauth_provider = "google"
    email_connection = True
    scans_inbox = True
    reading_api = _("the Gmail API")
    imap_setting = "MSC_GMAIL_IMAP"
    plugin = "gmail_plugin"
    trial_accounts = True
    restricts_senders = True

    def limits(self, channel: Channel) -> list[Rule]:
        # Gmail counts its daily limit over the last 24 hours, not per calendar day.
        trial = channel.oauth.trial
        daily = TRIAL_DAILY if trial else DAILY
        words = (
            gettext("Gmail trial limit: %(n)s messages in 24 hours")
            if trial
            else gettext("Gmail limit: %(n)s messages in 24 hours")
        )
        second = gettext("Gmail: %(n)s messages per second") % {"n": PER_SECOND}
        return [
            Rule("second", PER_SECOND, 1, True, second),
            rolling("day", daily, DAY, words % {"n": number_format(daily, force_grouping=True)}),
        ]

    def provider(self, channel: Channel) -> str:
        return "Gmail"

    def send_as(self, channel: Channel) -> list[str]:
        """The primary address and each custom "from" alias Google has accepted (one still
        waiting for its owner's confirmation, ``pending``, cannot send yet)."""
        token = oauth_token_for_reading(channel)
        answer = provider_json(GMAIL_API + SEND_AS_PATH, token=token, who="Gmail")
        aliases = answer.get("sendAs")
        if not isinstance(aliases, list):
            raise SendAsUnavailable("Gmail's answer listed no send-as addresses.")
        return [
            str(alias["sendAsEmail"]).strip().lower()
            for alias in aliases
            if isinstance(alias, dict)
            and alias.get("sendAsEmail")
            and (
                alias.get("isPrimary") or alias.get("verificationStatus", "accepted") == "accepted"
            )
        ]

    def deliver(
        self, channel: Channel, *, sender: str, recipient: str, data: bytes, on_handover: Handover
    ) -> str:
        from channels.transports import smtp

        return smtp.send_mime(
            gmail_smtp(),
            "",
            sender=sender,
            recipient=recipient,
            data=data,
            on_handover=on_handover,
            oauth=smtp.XOAuth2(channel.account_email, access_token(channel)),
            reuse=channel.pk,
        )


KIND = Gmail()

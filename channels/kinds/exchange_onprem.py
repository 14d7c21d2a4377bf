"""Email Connection: Exchange on-premises (2013/2016). The admin enters the EWS URL (or
Autodiscover) and the mailbox's credentials; everything goes through EWS with exchangelib
(``channels.transports.exchange``): the connection test, sending our MIME (a copy lands in Sent
Items) and reading the Inbox and Junk Email for bounces and replies (``bounces.ews``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.urls import reverse
from django.utils.formats import number_format
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from channels.kinds.base import DAY, Card, Kind, Rule, stored_password
from channels.kinds.config import ChannelKind, ExchangeOnPremConfig

if TYPE_CHECKING:
    from channels.models import Channel
    from channels.transports import Handover
    from channels.transports.smtp import ConnectionReport


class ExchangeOnPremForm(forms.Form):
    deployment = forms.ChoiceField(
        label=_("Deployment"),
        choices=[
            ("onprem", _("Exchange Server 2013 or 2016, on-premises")),
            ("hybrid", _("Exchange Hybrid (on-premises and Exchange Online together)")),
        ],
        initial="onprem",
    )
    autodiscover = forms.BooleanField(
        required=False, label=_("Find the server with Autodiscover"), initial=True
    )
    server_url = forms.URLField(
        required=False,
        label=_("EWS URL"),
        assume_scheme="https",
        help_text=_(
            "e.g. https://mail.example.com/EWS/Exchange.asmx (not needed with Autodiscover)."
        ),
    )
    email = forms.EmailField(label=_("Mailbox address"))
    username = forms.CharField(
        label=_("Username"), max_length=254, help_text=_("DOMAIN\\user or user@example.com")
    )
    password = forms.CharField(
        label=_("Password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
    )
    daily_limit = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=1_000_000,
        label=_("Daily sending limit"),
        help_text=_("Set by your IT team; msc-admin will not send more than this per day."),
    )

    def __init__(self, *args: Any, has_password: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.has_password = has_password
        self.fields["password"].help_text = (
            _("Stored. Leave blank to keep it.") if has_password else _("Required.")
        )

    def clean_deployment(self) -> str:
        if self.cleaned_data["deployment"] == "hybrid":
            raise forms.ValidationError(
                gettext(
                    "Exchange Hybrid is not supported. Mailboxes hosted in Exchange Online "
                    "connect through Email Connection: Exchange Online / Office 365 instead."
                )
            )
        return "onprem"

    def clean_server_url(self) -> str:
        url = self.cleaned_data.get("server_url") or ""
        if url and not url.startswith("https://"):
            raise forms.ValidationError(gettext("The EWS URL must start with https://."))
        return url

    def clean_password(self) -> str | None:
        password = self.cleaned_data.get("password") or None
        if password is None and not self.has_password:
            raise forms.ValidationError(gettext("Enter the mailbox password."))
        return password

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("autodiscover") and not data.get("server_url") and not self.errors:
            self.add_error("server_url", gettext("Enter the EWS URL, or tick Autodiscover."))
        return data

    def config(self) -> ExchangeOnPremConfig:
        data = self.cleaned_data
        return ExchangeOnPremConfig(
            server_url="" if data["autodiscover"] else data["server_url"],
            autodiscover=bool(data["autodiscover"]),
            username=data["username"].strip(),
            email=data["email"].lower(),
            daily_limit=data.get("daily_limit"),
        )


class ExchangeOnPrem(Kind):
    value = ChannelKind.EXCHANGE_ONPREM
    card = Card(
        key=ChannelKind.EXCHANGE_ONPREM,
        name=_("Email Connection: Exchange on-premises (2013/2016)"),
        summary=_(
            "Server URL (or Autodiscover) and credentials. Exchange Hybrid is not supported."
        ),
        authentication=_("SPF and DKIM are your IT team's."),
        throttling=_("Sending limits are set by your IT team."),
        bounce_tracking=_("Read from the mailbox's Inbox and Junk Email through EWS."),
    )
    staff_label = "Exchange"
    short_label = _("Exchange on-premises")
    overview_template = "channels/kinds/exchange_onprem.html"
    settings_type = ExchangeOnPremConfig
    form = ExchangeOnPremForm
    email_connection = True
    connection_test = True
    scans_inbox = True
    ews_inbox = True  # Inbox and Junk Email through EWS with the stored password, not IMAP
    plugin = "o365_plugin"
    day_limit_label = _("Daily limit")  # set by the customer's IT per UTC day, not rolling

    def edit_url(self, channel: Channel) -> str:
        return reverse("channels:exchange_edit")

    def limits(self, channel: Channel) -> list[Rule]:
        limit = channel.exchange.daily_limit
        if not limit:
            return []
        words = gettext("Daily limit set by your IT: %(n)s") % {
            "n": number_format(limit, force_grouping=True)
        }
        return [Rule("day", limit, DAY, True, words)]

    def provider(self, channel: Channel) -> str:
        return gettext("Your Exchange server")

    def check_connection(self, channel: Channel, password: str) -> ConnectionReport:
        from channels.transports import exchange

        return exchange.check_exchange(channel.exchange, password)

    def deliver(
        self, channel: Channel, *, sender: str, recipient: str, data: bytes, on_handover: Handover
    ) -> str:
        from channels.transports import exchange

        return exchange.send_mime(
            channel.exchange, stored_password(channel), data=data, on_handover=on_handover
        )


KIND = ExchangeOnPrem()

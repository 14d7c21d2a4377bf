"""Custom SMTP: the user's own relay (SendGrid, SparkPost, …), or the team's, set by an admin.
Throttled only by the limits set on it (per minute, hour or day, for ESP plans that have them),
each counted over a rolling window; bounces come from the ESP's event webhooks."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from django import forms
from django.urls import reverse, reverse_lazy
from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from channels import esp
from channels.forms import clean_domain
from channels.guard import SMTP_PORTS, OutboundRefused, check_destination, normalise_host
from channels.kinds.base import DAY, Card, Kind, Rule, rolling, stored_password
from channels.kinds.config import SMTP_LIMITS, AuthMethod, ChannelKind, Security, SmtpConfig

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

    from channels.models import Channel
    from channels.transports import Handover
    from channels.transports.smtp import ConnectionReport

# Mail servers of the providers Email Connection covers; custom SMTP must not be used for them.
PROVIDER_HOSTS = re.compile(
    r"(^|\.)(gmail\.com|googlemail\.com|google\.com|office365\.com|outlook\.com|"
    r"protection\.outlook\.com|hotmail\.com|live\.com)$"
)


class SmtpForm(forms.Form):
    host = forms.CharField(
        label=_("SMTP server"),
        max_length=253,
        help_text=_("For example smtp.sendgrid.net or smtp.sparkpostmail.com."),
    )
    port = forms.IntegerField(label=_("Port"), min_value=1, max_value=65535, initial=587)
    security = forms.ChoiceField(
        label=_("Security"),
        choices=Security.choices,
        initial=Security.STARTTLS,
        help_text=_("The password is only ever sent over an encrypted connection."),
    )
    auth_method = forms.ChoiceField(label=_("Authentication method"), choices=AuthMethod.choices)
    username = forms.CharField(
        label=_("Username"),
        max_length=254,
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    password = forms.CharField(
        label=_("Password"),
        required=False,
        strip=False,
        max_length=1024,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False),
    )
    sending_domain = forms.CharField(
        label=_("Sending domain"),
        max_length=253,
        help_text=_("The domain your email is sent from, e.g. example.com."),
    )

    def __init__(self, *args: Any, has_password: bool = False, team: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.has_password = has_password
        if has_password:
            self.fields["password"].help_text = _("Stored. Leave blank to keep it.")
        else:
            self.fields["password"].help_text = _("Required.")
        if team:
            self.fields["use_for_all_members"] = forms.BooleanField(
                required=False,
                label=_("Use for all team members"),
                help_text=_("Becomes the default channel of each member's default identity."),
            )

    def clean_host(self) -> str:
        try:
            host = normalise_host(self.cleaned_data["host"])
        except OutboundRefused as refused:
            raise forms.ValidationError(str(refused)) from None
        if PROVIDER_HOSTS.search(host):
            raise forms.ValidationError(
                format_html(
                    gettext(
                        "{host} is a Gmail or Microsoft server. Connect it through "
                        '<a href="{url}">Email Connection</a> instead: it keeps your SPF and '
                        "DKIM, throttles to the provider's limits and tracks bounces."
                    ),
                    host=host,
                    url=reverse_lazy("channels:overview"),
                )
            )
        return host

    def clean_sending_domain(self) -> str:
        return clean_domain(self.cleaned_data["sending_domain"])

    def clean_password(self) -> str | None:
        password = self.cleaned_data.get("password") or None
        if password is None and not self.has_password:
            raise forms.ValidationError(gettext("Enter the password (or API key) for this server."))
        if password and any(c in password for c in "\r\n"):
            raise forms.ValidationError(gettext("The password cannot contain line breaks."))
        return password

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        host, port, security = data.get("host"), data.get("port"), data.get("security")
        if port == 465 and security == Security.STARTTLS:
            self.add_error(
                "security", gettext("Port 465 speaks TLS from the first byte: choose SSL/TLS.")
            )
        elif port == 587 and security == Security.SSL_TLS:
            self.add_error(
                "security", gettext("Port 587 starts in plain text and upgrades: choose STARTTLS.")
            )
        if host and port and not self.errors:
            try:
                check_destination(host, port, allowed_ports=SMTP_PORTS)
            except OutboundRefused as refused:
                self.add_error(refused.field, str(refused))
        return data

    def config(self) -> SmtpConfig:
        """The settings entered; a subclass without a sending domain (the MSC pool's) gets ""."""
        data = self.cleaned_data
        return SmtpConfig(
            host=data["host"],
            port=data["port"],
            security=data["security"],
            auth_method=data["auth_method"],
            username=data["username"].strip(),
            sending_domain=data.get("sending_domain", ""),
        )


# The optional limits of an ESP plan: SmtpConfig field, rule name, window, how it reads (for
# the team's channel, then for one's own).
LIMITS = (
    (
        "per_minute",
        "minute",
        60,
        _("Team limit: %(n)s per minute"),
        _("Your limit: %(n)s per minute"),
    ),
    ("per_hour", "hour", 3600, _("Team limit: %(n)s per hour"), _("Your limit: %(n)s per hour")),
    (
        "per_day",
        "day",
        DAY,
        _("Team limit: %(n)s in 24 hours"),
        _("Your limit: %(n)s in 24 hours"),
    ),
)


# A whole number, its thousands grouped or not: 1000, 1,000, 1 000 (a space, a no-break or thin
# space), 1'000, 1_000. A group of other than three digits ("1,5", a decimal comma) is refused,
# not read as 15; so is a dot ("1.000" is a thousand in some countries and one in others).
GROUPED = re.compile(r"\d+|\d{1,3}(?:([,' _\u00a0\u202f\u2009\u2019])\d{3})(?:\1\d{3})*")


class LimitField(forms.IntegerField):
    """A sending limit: a whole number of 1 or more, thousands separators allowed, or empty."""

    def __init__(self, label: StrOrPromise) -> None:
        super().__init__(
            required=False,
            min_value=1,
            max_value=10_000_000,
            label=label,
            widget=forms.TextInput(attrs={"placeholder": _("no limit"), "inputmode": "numeric"}),
            error_messages={
                "invalid": _(
                    "Enter a whole number (like 1000 or 1,000), or leave it empty for no limit."
                ),
                "min_value": _("Enter a number of 1 or more, or leave it empty for no limit."),
                "max_value": _("Enter at most 10,000,000, or leave it empty for no limit."),
            },
        )

    def to_python(self, value: Any) -> int | None:
        text = str(value or "").strip()
        if text in self.empty_values:
            return None
        sign, digits = ("-", text[1:].strip()) if text[:1] in "-\u2212" else ("", text)
        if not GROUPED.fullmatch(digits):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return int(sign + re.sub(r"\D", "", digits))


class SmtpChannelForm(SmtpForm):
    """A custom SMTP channel: the server, and the sending limits of the provider's plan."""

    per_minute = LimitField(_("Sending limit per minute"))
    per_hour = LimitField(_("Sending limit per hour"))
    per_day = LimitField(_("Sending limit per 24 hours"))

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.order_fields([name for name in self.fields if name not in SMTP_LIMITS])
        self.fields["per_minute"].help_text = _(
            "Optional, for provider plans with sending limits: msc-admin sends no more than "
            "you set here, and the rest waits in the queue until the minute, hour or 24 hours "
            "before it have room. Leave empty for no limit."
        )

    def clean(self) -> dict[str, Any]:
        """A shorter window's limit cannot be more than a longer one's: the longer would stop
        the sending first and the shorter would never be reached (a typo, most likely)."""
        data = super().clean()
        for short, long, words in (
            (
                "per_minute",
                "per_hour",
                _(
                    "More than the limit per hour (%(n)s): a minute cannot send more than that. "
                    "Lower this limit or raise that one."
                ),
            ),
            (
                "per_hour",
                "per_day",
                _(
                    "More than the limit per 24 hours (%(n)s): an hour cannot send more than "
                    "that. Lower this limit or raise that one."
                ),
            ),
            (
                "per_minute",
                "per_day",
                _(
                    "More than the limit per 24 hours (%(n)s): a minute cannot send more than "
                    "that. Lower this limit or raise that one."
                ),
            ),
        ):
            low, high = data.get(short), data.get(long)
            if low and high and low > high and short not in self.errors:
                self.add_error(short, words % {"n": number_format(high, force_grouping=True)})
        return data

    def config(self) -> SmtpConfig:
        limits = {field: self.cleaned_data.get(field) for field in SMTP_LIMITS}
        return SmtpConfig(**{**super().config().to_dict(), **limits})


class CustomSmtp(Kind):
    value = ChannelKind.CUSTOM_SMTP
    card = Card(
        key=ChannelKind.CUSTOM_SMTP,
        name=_("Custom SMTP (SendGrid, SparkPost, …)"),
        summary=_("Your own SMTP relay, for yourself or, set by an admin, for the whole team."),
        authentication=_("SPF and DKIM are configured at your email service provider."),
        throttling=_(
            "Only by the limits you set (per minute, hour or day), for provider plans that "
            "have them; none unless you set one."
        ),
        bounce_tracking=_("Through your provider's event webhooks (SendGrid, SparkPost)."),
    )
    staff_label = "Custom SMTP"
    overview_template = "channels/kinds/custom_smtp.html"
    settings_type = SmtpConfig
    form = SmtpChannelForm
    connection_test = True
    esp_webhooks = True
    domain_check = True
    not_throttled = _("Not throttled: no sending limit is set on this channel.")

    def label_detail(self, channel: Channel) -> str:
        return channel.account_email or channel.smtp.host

    def limits(self, channel: Channel) -> list[Rule]:
        config = channel.smtp
        return [
            rolling(
                name,
                value,
                seconds,
                str(team if channel.is_team else own)
                % {"n": number_format(value, force_grouping=True)},
            )
            for field, name, seconds, team, own in LIMITS
            if (value := getattr(config, field))
        ]

    def provider(self, channel: Channel) -> str:
        return channel.smtp.host or self.label

    def relay_host(self, channel: Channel) -> str:
        return channel.smtp.host

    def edit_url(self, channel: Channel) -> str:
        return reverse("channels:team_smtp_edit" if channel.is_team else "channels:smtp_edit")

    def extra_headers(self, channel: Channel, token: str) -> list[tuple[str, str]]:
        return esp.metadata_headers(channel.smtp.host, token)

    def check_connection(self, channel: Channel, password: str) -> ConnectionReport:
        from channels.transports import smtp

        return smtp.check_connection(channel.smtp, password)

    def deliver(
        self, channel: Channel, *, sender: str, recipient: str, data: bytes, on_handover: Handover
    ) -> str:
        from channels.transports import smtp

        return smtp.send_mime(
            channel.smtp,
            stored_password(channel),
            sender=sender,
            recipient=recipient,
            data=data,
            on_handover=on_handover,
            reuse=channel.pk,
        )


KIND = CustomSmtp()

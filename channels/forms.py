from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.urls import reverse_lazy
from django.utils.html import format_html

from channels.guard import SMTP_PORTS, OutboundRefused, check_destination, normalise_host
from channels.kinds import AuthMethod, ExchangeOnPremConfig, Security, SmtpConfig

# Mail servers of the providers Email Connection covers; custom SMTP must not be used for them.
PROVIDER_HOSTS = re.compile(
    r"(^|\.)(gmail\.com|googlemail\.com|google\.com|office365\.com|outlook\.com|"
    r"protection\.outlook\.com|hotmail\.com|live\.com)$"
)
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def clean_domain(value: str) -> str:
    domain = value.strip().lower().rstrip(".").removeprefix("@")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise forms.ValidationError("Enter a domain such as example.com.") from None
    if not DOMAIN.match(domain):
        raise forms.ValidationError("Enter a domain such as example.com.")
    return domain


class SmtpForm(forms.Form):
    host = forms.CharField(
        label="SMTP server",
        max_length=253,
        help_text="For example smtp.sendgrid.net or smtp.sparkpostmail.com.",
    )
    port = forms.IntegerField(min_value=1, max_value=65535, initial=587)
    security = forms.ChoiceField(
        choices=Security.choices,
        initial=Security.STARTTLS,
        help_text="The password is only ever sent over an encrypted connection.",
    )
    auth_method = forms.ChoiceField(label="Authentication method", choices=AuthMethod.choices)
    username = forms.CharField(
        max_length=254, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    password = forms.CharField(
        required=False,
        strip=False,
        max_length=1024,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False),
    )
    sending_domain = forms.CharField(
        max_length=253, help_text="The domain your email is sent from, e.g. example.com."
    )

    def __init__(self, *args: Any, has_password: bool = False, team: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.has_password = has_password
        if has_password:
            self.fields["password"].help_text = "Stored. Leave blank to keep it."
        else:
            self.fields["password"].help_text = "Required."
        if team:
            self.fields["use_for_all_members"] = forms.BooleanField(
                required=False,
                label="Use for all team members",
                help_text="Becomes the default channel of each member's default identity.",
            )

    def clean_host(self) -> str:
        try:
            host = normalise_host(self.cleaned_data["host"])
        except OutboundRefused as refused:
            raise forms.ValidationError(str(refused)) from None
        if PROVIDER_HOSTS.search(host):
            raise forms.ValidationError(
                format_html(
                    "{} is a Gmail or Microsoft server. Connect it through "
                    '<a href="{}">Email Connection</a> instead: it keeps your SPF and DKIM, '
                    "throttles to the provider's limits and tracks bounces.",
                    host,
                    reverse_lazy("channels:overview"),
                )
            )
        return host

    def clean_sending_domain(self) -> str:
        return clean_domain(self.cleaned_data["sending_domain"])

    def clean_password(self) -> str | None:
        password = self.cleaned_data.get("password") or None
        if password is None and not self.has_password:
            raise forms.ValidationError("Enter the password (or API key) for this server.")
        if password and any(c in password for c in "\r\n"):
            raise forms.ValidationError("The password cannot contain line breaks.")
        return password

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        host, port, security = data.get("host"), data.get("port"), data.get("security")
        if port == 465 and security == Security.STARTTLS:
            self.add_error("security", "Port 465 speaks TLS from the first byte: choose SSL/TLS.")
        elif port == 587 and security == Security.SSL_TLS:
            self.add_error(
                "security", "Port 587 starts in plain text and upgrades: choose STARTTLS."
            )
        if host and port and not self.errors:
            try:
                check_destination(host, port, allowed_ports=SMTP_PORTS)
            except OutboundRefused as refused:
                self.add_error(
                    "host" if "port" not in str(refused).lower() else "port", str(refused)
                )
        return data

    def config(self) -> SmtpConfig:
        data = self.cleaned_data
        return SmtpConfig(
            host=data["host"],
            port=data["port"],
            security=data["security"],
            auth_method=data["auth_method"],
            username=data["username"].strip(),
            sending_domain=data["sending_domain"],
        )


class ExchangeOnPremForm(forms.Form):
    deployment = forms.ChoiceField(
        choices=[
            ("onprem", "Exchange Server 2013 or 2016, on-premises"),
            ("hybrid", "Exchange Hybrid (on-premises and Exchange Online together)"),
        ],
        initial="onprem",
    )
    autodiscover = forms.BooleanField(
        required=False, label="Find the server with Autodiscover", initial=True
    )
    server_url = forms.URLField(
        required=False,
        label="EWS URL",
        assume_scheme="https",
        help_text="e.g. https://mail.example.com/EWS/Exchange.asmx (not needed with Autodiscover).",
    )
    email = forms.EmailField(label="Mailbox address")
    username = forms.CharField(max_length=254, help_text="DOMAIN\\user or user@example.com")
    password = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False)
    )
    daily_limit = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=1_000_000,
        label="Daily sending limit",
        help_text="Set by your IT team; msc-admin will not send more than this per day.",
    )

    def __init__(self, *args: Any, has_password: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.has_password = has_password
        self.fields["password"].help_text = (
            "Stored. Leave blank to keep it." if has_password else "Required."
        )

    def clean_deployment(self) -> str:
        if self.cleaned_data["deployment"] == "hybrid":
            raise forms.ValidationError(
                "Exchange Hybrid is not supported. Mailboxes hosted in Exchange Online connect "
                "through Email Connection: Exchange Online / Office 365 instead."
            )
        return "onprem"

    def clean_server_url(self) -> str:
        url = self.cleaned_data.get("server_url") or ""
        if url and not url.startswith("https://"):
            raise forms.ValidationError("The EWS URL must start with https://.")
        return url

    def clean_password(self) -> str | None:
        password = self.cleaned_data.get("password") or None
        if password is None and not self.has_password:
            raise forms.ValidationError("Enter the mailbox password.")
        return password

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("autodiscover") and not data.get("server_url") and not self.errors:
            self.add_error("server_url", "Enter the EWS URL, or tick Autodiscover.")
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


class TestEmailForm(forms.Form):
    to = forms.EmailField(label="Send a test email to")


class IdentityForm(forms.Form):
    email = forms.EmailField(label="From address")
    name = forms.CharField(label="From name", max_length=200)

    def __init__(self, *args: Any, existing: set[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.existing = existing or set()

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if email in self.existing:
            raise forms.ValidationError("You already have this address.")
        return email

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if any(c in name for c in '\r\n<>"'):
            raise forms.ValidationError("The name cannot contain line breaks, quotes or < >.")
        return name


class BlockedDomainForm(forms.Form):
    domain = forms.CharField(
        max_length=253, help_text="Sends to this domain will fail, e.g. competitor.com"
    )

    def clean_domain(self) -> str:
        return clean_domain(self.cleaned_data["domain"])


class ThrottlingForm(forms.Form):
    throttling_enabled = forms.BooleanField(required=False, label="Throttle Email Connection sends")
    batch_size = forms.IntegerField(
        min_value=1, max_value=500, label="Batch size", help_text="Emails per batch, per user."
    )
    wait_seconds = forms.IntegerField(
        min_value=0, max_value=3600, label="Wait before each batch (seconds)"
    )


class SpikeProtectionForm(forms.Form):
    spike_protection = forms.BooleanField(
        required=False, label="Pause a channel when its bounces spike"
    )
    spike_threshold_pct = forms.IntegerField(
        min_value=1,
        max_value=100,
        label="Bounce rate that pauses a channel (%)",
        help_text="Share of the mail a channel sent in the last hour that has bounced.",
    )
    spike_min_sent = forms.IntegerField(
        min_value=1,
        max_value=100000,
        label="Judge only after this many messages",
        help_text="Fewer messages than this in the hour never pause a channel.",
    )


def oauth_client_configured(provider: str) -> bool:
    providers: dict[str, Any] = settings.SOCIALACCOUNT_PROVIDERS
    app = providers.get(provider, {}).get("APPS") or []
    return bool(app and app[0].get("client_id") and app[0].get("secret"))

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from channels.providers import GROUPS, CapPeriod

DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def clean_domain(value: str) -> str:
    domain = value.strip().lower().rstrip(".").removeprefix("@")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise forms.ValidationError(_("Enter a domain such as example.com.")) from None
    if not DOMAIN.match(domain):
        raise forms.ValidationError(_("Enter a domain such as example.com."))
    return domain


class TestEmailForm(forms.Form):
    # 254: the longest address SMTP carries (RFC 5321's path limit), as every address field here.
    to = forms.EmailField(label=gettext_lazy("Send a test email to"), max_length=254)


class IdentityNameForm(forms.Form):
    name = forms.CharField(
        label=gettext_lazy("From name"),
        max_length=200,
        # In words: a "{{sender_name}}" here read as a template variable left unfilled.
        help_text=gettext_lazy(
            "Who your email says it is from, and the name templates sign it with "
            "(the “your name” merge field)."
        ),
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if any(c in name for c in '\r\n<>"'):
            raise forms.ValidationError(_("The name cannot contain line breaks, quotes or < >."))
        return name


class IdentityForm(IdentityNameForm):
    email = forms.EmailField(label=gettext_lazy("From address"))
    field_order = ["email", "name"]

    def __init__(self, *args: Any, existing: set[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.existing = existing or set()

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if email in self.existing:
            raise forms.ValidationError(_("You already have this address."))
        return email


class BlockedDomainForm(forms.Form):
    domain = forms.CharField(
        label=gettext_lazy("Domain"),
        max_length=253,
        help_text=gettext_lazy("Sends to this domain will fail, e.g. competitor.com"),
    )

    def clean_domain(self) -> str:
        return clean_domain(self.cleaned_data["domain"])


class DomainCapForm(forms.Form):
    """A cap on the team's mail to a receiving provider or to some domains."""

    limit = forms.IntegerField(
        label=gettext_lazy("At most"),
        min_value=1,
        max_value=1_000_000,
        error_messages={
            "min_value": gettext_lazy(
                "Enter 1 or more. To stop all mail to them, block the domain instead."
            ),
            "max_value": gettext_lazy("Enter at most 1,000,000."),
            "invalid": gettext_lazy("Enter a whole number, such as 200."),
        },
    )
    period = forms.ChoiceField(label=gettext_lazy("Per"), choices=CapPeriod.choices)
    to = forms.CharField(
        label=gettext_lazy("To"),
        max_length=1000,
        help_text=gettext_lazy(
            "Google, Microsoft or Yahoo (their mailboxes, whatever the domain), or "
            "domains separated by commas, e.g. gmail.com, googlemail.com"
        ),
    )

    def clean_to(self) -> dict[str, Any]:
        text = self.cleaned_data["to"].strip()
        names = {name.lower(): key for key, name in GROUPS.items()}
        if text.lower() in names:
            return {"provider": names[text.lower()], "domains": []}
        parts = [part.strip() for part in re.split(r"[,\s;]+", text) if part.strip()]
        if len(parts) == 1 and "." not in parts[0]:
            raise forms.ValidationError(
                _(
                    "“%(name)s” is not a provider we know: enter Google, Microsoft or Yahoo, "
                    "or domains such as example.com."
                )
                % {"name": parts[0]}
            )
        domains: list[str] = []
        for part in parts:
            try:
                domain = clean_domain(part)
            except forms.ValidationError:
                said = (
                    _("“%(part)s” is not a domain")
                    if len(parts) == 1
                    else _("“%(part)s” (in “%(text)s”) is not a domain")
                ) % {"part": part, "text": text}
                raise forms.ValidationError(
                    _("%(said)s: enter domains such as example.com, separated by commas.")
                    % {"said": said}
                ) from None
            if domain not in domains:
                domains.append(domain)
        if not domains:
            raise forms.ValidationError(_("Enter Google, Microsoft, Yahoo or some domains."))
        return {"provider": "", "domains": domains}


class ThrottlingForm(forms.Form):
    throttling_enabled = forms.BooleanField(
        required=False, label=gettext_lazy("Throttle Email Connection sends")
    )
    batch_size = forms.IntegerField(
        min_value=1,
        max_value=500,
        label=gettext_lazy("Batch size"),
        help_text=gettext_lazy("Emails per batch, per user."),
    )
    wait_seconds = forms.IntegerField(
        min_value=0, max_value=3600, label=gettext_lazy("Wait before each batch (seconds)")
    )


class SpikeProtectionForm(forms.Form):
    spike_protection = forms.BooleanField(
        required=False, label=gettext_lazy("Pause a channel when its bounces spike")
    )
    spike_threshold_pct = forms.IntegerField(
        min_value=1,
        max_value=100,
        label=gettext_lazy("Bounce rate that pauses a channel (%)"),
        help_text=gettext_lazy(
            "Share of the mail a channel sent in the last hour that has bounced."
        ),
    )
    spike_min_sent = forms.IntegerField(
        min_value=1,
        max_value=100000,
        label=gettext_lazy("Judge only after this many messages"),
        help_text=gettext_lazy("Fewer messages than this in the hour never pause a channel."),
    )


class SoftBounceForm(forms.Form):
    soft_bounce_limit = forms.IntegerField(
        min_value=2,
        max_value=20,
        label=gettext_lazy("Soft bounces that end a person's campaign"),
        help_text=gettext_lazy(
            "A soft bounce (mailbox full, greylisting) tries the step again a day later; "
            "this many to one address (2 or more) end the campaign for that person and "
            "suppress the address."
        ),
        error_messages={
            "min_value": gettext_lazy(
                "Enter 2 or more: with 1, the first soft bounce would end the "
                "campaign, and a soft bounce is worth trying again (a full mailbox is emptied, "
                "greylisting lets the retry through)."
            ),
        },
    )
    soft_bounce_days = forms.IntegerField(
        min_value=1, max_value=90, label=gettext_lazy("Counted over this many days")
    )


def oauth_client_configured(provider: str) -> bool:
    providers: dict[str, Any] = settings.SOCIALACCOUNT_PROVIDERS
    app = providers.get(provider, {}).get("APPS") or []
    return bool(app and app[0].get("client_id") and app[0].get("secret"))


LABEL = r"[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?"
SELECTOR = re.compile(rf"^{LABEL}(?:\.{LABEL})*$")


class DomainCheckForm(forms.Form):
    """Check DNS now: one domain of the channel (with the DKIM selector its admin knows), or
    all of them."""

    domain = forms.CharField(required=False, max_length=253, widget=forms.HiddenInput)
    selector = forms.CharField(
        required=False,
        max_length=63,
        label=gettext_lazy("DKIM selector"),
        help_text=gettext_lazy(
            "Optional: the name before ._domainkey in your provider's DKIM record."
        ),
    )

    def clean_domain(self) -> str:
        value = self.cleaned_data["domain"]
        return clean_domain(value) if value.strip() else ""

    def clean_selector(self) -> str:
        value = self.cleaned_data["selector"].strip().lower().removesuffix("._domainkey")
        if value and not SELECTOR.match(value):
            raise forms.ValidationError(
                _("A DKIM selector is letters, digits and hyphens, such as s1 or scph0117.")
            )
        return value

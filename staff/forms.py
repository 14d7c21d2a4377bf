from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from channels.kinds.custom_smtp import SmtpForm


class MscServerForm(SmtpForm):
    """An MSC relay: the custom SMTP form's checks (outbound guard, ports, TLS, write-only
    password), without a sending domain, with a name."""

    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("A label staff recognise, e.g. msc-relay-1."),
    )
    field_order = ["name", "host", "port", "security", "auth_method", "username", "password"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["sending_domain"]
        # Not the custom SMTP hint (an ESP's host): a pool server is one of our own relays.
        self.fields["host"].label = _("Relay host")
        self.fields["host"].help_text = _(
            "The host name of one relay of the shared MSC pool, the servers that send legacy "
            "ToutApp tenants' mail (for example msc-relay-1.example.net). Not an email service "
            "provider's host: tenants add those as their own custom SMTP channel."
        )


class TenantCreateForm(forms.Form):
    name = forms.CharField(max_length=200, label=_("Company name"))
    slug = forms.SlugField(
        label=_("Slug"),
        max_length=60,
        help_text=_("Short and unique, lower case: used in URLs and reports."),
    )
    legacy_toutapp = forms.BooleanField(
        required=False,
        label=_("Legacy ToutApp tenant"),
        help_text=_("Only legacy tenants may send through the shared MSC servers."),
    )
    admin_email = forms.EmailField(
        label=_("First admin's email"), help_text=_("They get an invitation to set a password.")
    )

    def clean_slug(self) -> str:
        from accounts.models import Tenant

        slug = self.cleaned_data["slug"].lower()
        if Tenant.objects.filter(slug=slug).exists():
            raise forms.ValidationError(_("Another tenant already uses this slug."))
        return slug

    def clean_admin_email(self) -> str:
        from accounts.forms import InviteForm

        form = InviteForm(data={"email": self.cleaned_data["admin_email"], "role": "admin"})
        if not form.is_valid():
            raise forms.ValidationError(list(form.errors["email"]))
        return str(form.cleaned_data["email"])

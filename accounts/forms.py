from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import password_validation
from django.utils.translation import gettext_lazy as _

from accounts import language
from accounts.models import Role, User
from msc_admin.encoded_words import decoded


class InviteForm(forms.Form):
    email = forms.EmailField(
        label=_("Email address"),
        max_length=254,
        widget=forms.EmailInput(
            attrs={"autocomplete": "off", "placeholder": _("name@company.com")}
        ),
    )
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.REP)

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        existing = User.objects.filter(email__iexact=email).select_related("membership").first()
        if existing is not None:
            # Do not say which team: the address may belong to another customer.
            raise forms.ValidationError(_("This address already has an msc-admin account."))
        return email


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


def _clean_name_part(value: str) -> str:
    """A name as it appears in a From header: one line, no quotes or angle brackets; written as
    MIME encoded words (pasted from a mail client), the words they stand for."""
    value = " ".join(decoded(value).split())
    if any(c in value for c in '"<>'):
        raise forms.ValidationError(_("A name cannot contain quotes or < >."))
    return value


class NameForm(forms.Form):
    """A person's name, as their mail is signed and their colleagues see it."""

    first_name = forms.CharField(
        label=_("First name"),
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "given-name"}),
    )
    last_name = forms.CharField(
        label=_("Last name"),
        max_length=150,
        required=False,
        widget=forms.TextInput(attrs={"autocomplete": "family-name"}),
    )

    def clean_first_name(self) -> str:
        name = _clean_name_part(self.cleaned_data["first_name"])
        if not name:
            raise forms.ValidationError(_("Enter your first name."))
        return name

    def clean_last_name(self) -> str:
        return _clean_name_part(self.cleaned_data["last_name"])


class AcceptInvitationForm(NameForm):
    password1 = forms.CharField(
        label=_("Choose a password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label=_("Repeat the password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        self.user = user
        super().__init__(*args, **kwargs)
        # Django's validators' rules, in the language of this request.
        self.fields[
            "password1"
        ].help_text = password_validation.password_validators_help_text_html()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        p1, p2 = cleaned.get("password1"), cleaned.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", _("The two passwords differ."))
        elif p1:
            try:
                password_validation.validate_password(p1, self.user)
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return cleaned


class LanguageSelect(forms.Select):
    """Each language's option is marked as written in it (``lang``), for screen readers."""

    def create_option(self, name: str, value: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(name, value, *args, **kwargs)
        if value:
            option["attrs"]["lang"] = value
        return option


class LanguageForm(forms.Form):
    """The language a person reads the product in: their browser's, or one of their own."""

    language = forms.ChoiceField(
        label=_("Language"), choices=language.CHOICES, required=False, widget=LanguageSelect
    )

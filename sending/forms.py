"""Forms validate and normalise; they never send or write other rows."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from email.utils import getaddresses
from typing import Any, NamedTuple

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.functional import lazy
from django.utils.translation import gettext, gettext_lazy, ngettext, pgettext_lazy

from accounts.models import Tenant, User
from channels.models import Identity
from channels.routing import Source
from msc_admin.encoded_words import decoded
from sending import merge, mime
from sending.models import Campaign, Contact, Template
from sending.services import Draft, template_check
from sending.services.suppressions import suppressed_contacts


def _merge_help() -> str:
    return gettext(
        "Merge fields: %(fields)s. Add a fallback after a bar: {{first_name|there}}."
    ) % {"fields": ", ".join("{{" + name + "}}" for name in merge.FIELDS)}


MERGE_HELP = lazy(_merge_help, str)()


def _lines(text: str) -> str:
    """Text as typed in a browser (CRLF line ends) compared with text as stored."""
    return text.replace("\r\n", "\n").strip()


def _no_line_breaks(value: str, label: str) -> str:
    try:
        mime.check_header_values(**{label: value})
    except mime.HeaderInjection as error:
        raise ValidationError(str(error)) from None
    return value


class TemplateForm(forms.ModelForm):
    class Meta:
        model = Template
        fields = ["name", "subject", "body", "shared"]
        widgets = {"body": forms.Textarea(attrs={"rows": 10})}
        help_texts = {"body": MERGE_HELP}
        labels = {
            "name": gettext_lazy("Name"),
            "subject": gettext_lazy("Subject"),
            "body": gettext_lazy("Body"),
            "shared": gettext_lazy("Shared"),
        }

    def clean_subject(self) -> str:
        return _no_line_breaks(self.cleaned_data["subject"].strip(), "subject")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("subject") is not None and data.get("body") is not None:
            try:
                template_check(data["subject"], data["body"])
            except ValidationError as error:
                self.add_error("body", error)
        return data


class ContactForm(forms.ModelForm):
    class Meta:
        model = Contact
        fields = ["email", "first_name", "last_name", "company"]
        labels = {
            "email": gettext_lazy("Email"),
            "first_name": gettext_lazy("First name"),
            "last_name": gettext_lazy("Last name"),
            "company": gettext_lazy("Company"),
        }

    def clean_email(self) -> str:
        return str(self.cleaned_data["email"]).strip().lower()


class _CsvUploadForm(forms.Form):
    """A CSV file of at most 5 MB (the subclass names its columns in ``file``'s help text)."""

    MAX_BYTES = 5 * 1024 * 1024

    def _upload(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > self.MAX_BYTES:
            raise ValidationError(
                gettext("The file is larger than 5 MB; split it into smaller files.")
            )
        return upload


class ContactImportForm(_CsvUploadForm):
    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        help_text=gettext_lazy(
            "A header row with an “email” column; first_name, last_name and company are read "
            "too. Up to 5 MB."
        ),
    )

    def clean_file(self) -> Any:
        return self._upload()


class SuppressionAddForm(forms.Form):
    address = forms.EmailField(label=gettext_lazy("Email address"), max_length=254)
    note = forms.CharField(
        label=gettext_lazy("Note"),
        max_length=300,
        required=False,
        help_text=gettext_lazy("Optional: why, for the other admins."),
    )


class SuppressionImportForm(_CsvUploadForm):
    file = forms.FileField(
        label=gettext_lazy("CSV file"),
        help_text=gettext_lazy(
            "An “email” column (or the addresses in the first column), and an optional “note”. "
            "Up to 5 MB."
        ),
    )

    def clean_file(self) -> str:
        raw = self._upload().read()
        try:
            return str(raw.decode("utf-8-sig"))
        except UnicodeDecodeError:
            return str(raw.decode("latin-1"))


class ComposeForm(forms.Form):
    identity = forms.ModelChoiceField(
        queryset=Identity.objects.none(), label=pgettext_lazy("sender", "From")
    )
    to = forms.EmailField(label=pgettext_lazy("recipient", "To"), max_length=254)
    template = forms.ModelChoiceField(
        queryset=Template.objects.none(),
        required=False,
        label=gettext_lazy("Template"),
        help_text=gettext_lazy("Optional: start from one."),
    )
    subject = forms.CharField(max_length=300, required=False, label=gettext_lazy("Subject"))
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10}),
        required=False,
        label=gettext_lazy("Body"),
        help_text=MERGE_HELP,
    )
    send_at = forms.DateTimeField(
        required=False,
        label=gettext_lazy("Send later"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The time typed is read in the server's time zone (TIME_ZONE): say which.
        self.fields["send_at"].help_text = gettext("Time in %(zone)s. Leave empty to send now.") % {
            "zone": timezone.get_current_timezone_name()
        }
        identities = Identity.objects.filter(user=user).verified()
        self.fields["identity"].queryset = identities  # type: ignore[attr-defined]
        self.fields["identity"].initial = identities.filter(is_default=True).first()
        self.fields["template"].queryset = Template.objects.filter(  # type: ignore[attr-defined]
            tenant_id=user.membership.tenant_id
        ).visible_to(user)

    @classmethod
    def prefilled(cls, data: Mapping[str, Any], *, user: User) -> ComposeForm:
        """An unbound form holding what was typed, with the chosen template's subject and body
        in each field the person has not written themselves (empty, or still a template's
        text): choosing a template fills them at once and never overwrites their own words."""
        kept = ("identity", "to", "template", "subject", "body", "send_at")
        form = cls(user=user, initial={name: data[name] for name in kept if data.get(name)})
        choice = str(data.get("template", ""))
        templates = form.fields["template"].queryset  # type: ignore[attr-defined]
        template = templates.filter(pk=choice).first() if choice.isdigit() else None
        if template is None:
            return form
        texts = list(templates.values_list("subject", "body"))
        subject = str(data.get("subject", "")).strip()
        body = _lines(str(data.get("body", "")))
        if not subject or subject in {s.strip() for s, _ in texts}:
            form.initial["subject"] = template.subject
        if not body.strip() or body in {_lines(b) for _, b in texts}:
            form.initial["body"] = template.body
        return form

    def clean_to(self) -> str:
        return _no_line_breaks(str(self.cleaned_data["to"]).strip().lower(), "recipient")

    def clean_subject(self) -> str:
        return _no_line_breaks(self.cleaned_data["subject"].strip(), "subject")

    def clean_send_at(self) -> Any:
        value = self.cleaned_data.get("send_at")
        if value is not None and value < timezone.now():
            raise ValidationError(gettext("That time has passed; leave it empty to send now."))
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        template = data.get("template")
        if template is not None:
            data["subject"] = data.get("subject") or template.subject
            data["body"] = data.get("body") or template.body
        # A field already refused (too long, say) was written: its own error says what is wrong.
        if not data.get("subject") and "subject" not in self.errors:
            self.add_error("subject", gettext("Write a subject or pick a template."))
        if not data.get("body") and "body" not in self.errors:
            self.add_error("body", gettext("Write the email or pick a template."))
        if data.get("subject") and data.get("body"):
            try:
                template_check(data["subject"], data["body"])
            except ValidationError as error:
                self.add_error("body", error)
        return data

    def draft(self) -> Draft:
        """The email as written, merge fields and all (``message_compose`` fills them in)."""
        data = self.cleaned_data
        return Draft(
            to_email=data["to"],
            subject=data["subject"],
            body=data["body"],
            identity=data["identity"],
            template=data["template"],
            send_at=data["send_at"],
        )


class _JsonValue(forms.Field):
    """A value of a JSON object, as given (any JSON type): its ``clean_<name>`` reads it."""

    def to_python(self, value: Any) -> Any:
        return value


class _JsonText(_JsonValue):
    """A JSON value read as text: missing, null, false, 0 or empty is ""."""

    def to_python(self, value: Any) -> str:
        return str(value) if value else ""


REQUIRED = gettext_lazy("Required.")


class ApiMessageForm(forms.Form):
    """One email submitted to the plugins' JSON endpoint (the parsed JSON object is the data):
    to, subject, body (or template_id), optional source (gmail_plugin, o365_plugin, api), from
    (an identity's address), send_at (ISO 8601 with a time zone). Each invalid field gets one
    sentence (``first_errors``), in the order of the fields."""

    SOURCES = (Source.GMAIL_PLUGIN, Source.O365_PLUGIN, Source.API)

    source = _JsonText(required=False)
    # "from" is a Python keyword: added to base_fields below, in this place in the order.
    template_id = _JsonValue(required=False)
    to = _JsonText(required=False)
    subject = _JsonText(required=False)
    body = _JsonText(required=False)
    send_at = _JsonValue(required=False)

    field_order = ["source", "from", "template_id", "to", "subject", "body", "send_at"]

    def __init__(self, data: dict[str, Any], *, user: User, tenant: Tenant) -> None:
        super().__init__(data)
        self.user, self.tenant = user, tenant

    def clean_source(self) -> str:
        source = self.cleaned_data["source"] or Source.API
        if source not in self.SOURCES:
            raise ValidationError(
                gettext("One of: %(sources)s.") % {"sources": ", ".join(sorted(self.SOURCES))}
            )
        return source

    def clean_from(self) -> Identity | None:
        if self.cleaned_data.get("source") != Source.API:
            return None  # the plugins always send as their mailbox (routing rules)
        wanted = Identity.objects.filter(user=self.user)
        address = self.cleaned_data["from"]
        found = (
            wanted.filter(email=address.lower()) if address else wanted.filter(is_default=True)
        ).first()
        if found is None:
            raise ValidationError(gettext("Not one of your sending identities."))
        return found

    def clean_template_id(self) -> Template | None:
        value = self.cleaned_data["template_id"]
        if value is None:
            return None
        found = (
            Template.objects.for_tenant(self.tenant)
            .visible_to(self.user)
            .filter(pk=value if str(value).isdigit() else -1)
            .first()
        )
        if found is None:
            raise ValidationError(gettext("No such template."))
        return found

    def clean_to(self) -> str:
        if not (to := self.cleaned_data["to"].strip().lower()):
            raise ValidationError(REQUIRED)
        return to

    def _text(self, name: str) -> str:
        """The subject or body as given, else the template's."""
        template = self.cleaned_data.get("template_id")
        if not (text := self.cleaned_data[name] or (getattr(template, name) if template else "")):
            raise ValidationError(REQUIRED)
        return text

    def clean_subject(self) -> str:
        return self._text("subject")

    def clean_body(self) -> str:
        return self._text("body")

    def clean_send_at(self) -> Any:
        value = self.cleaned_data["send_at"]
        if not value:
            return None
        try:
            when = parse_datetime(str(value))
        except ValueError:  # well formed, but no such day or time
            when = None
        if when is None or timezone.is_naive(when):
            raise ValidationError(
                gettext("An ISO 8601 time with a time zone, e.g. 2026-12-01T09:00:00Z.")
            )
        return when

    def first_errors(self) -> dict[str, str]:
        return {name: str(errors[0]) for name, errors in self.errors.items()}

    def draft(self) -> Draft:
        data = self.cleaned_data
        return Draft(
            to_email=data["to"],
            subject=data["subject"],
            body=data["body"],
            identity=data["from"],
            source=data["source"],
            template=data["template_id"],
            send_at=data["send_at"],
        )


ApiMessageForm.base_fields["from"] = _JsonText(required=False)


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = ["name", "identity"]
        labels = {"name": gettext_lazy("Name"), "identity": gettext_lazy("Send as")}

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        identities = Identity.objects.filter(user=user).verified()
        self.fields["identity"].queryset = identities  # type: ignore[attr-defined]
        self.fields["identity"].required = True
        self.fields["identity"].initial = identities.filter(is_default=True).first()


class StepForm(forms.Form):
    template = forms.ModelChoiceField(
        queryset=Template.objects.none(), label=gettext_lazy("Template")
    )
    delay_days = forms.IntegerField(
        min_value=0,
        max_value=365,
        initial=0,
        label=gettext_lazy("Wait (days)"),
        help_text=gettext_lazy("After the previous step; for the first step, after enrolment."),
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].queryset = Template.objects.filter(  # type: ignore[attr-defined]
            tenant_id=user.membership.tenant_id
        ).visible_to(user)


class _PeopleChecklist(forms.CheckboxSelectMultiple):
    """The people to enrol: one already enrolled, or suppressed, is marked with the reason and
    cannot be ticked."""

    suppressed: Mapping[str, str] = {}  # lower-cased address: why (set per form)
    enrolled: Collection[int] = frozenset()  # contact ids (set per form)

    def create_option(self, name: str, value: Any, label: Any, *args: Any, **kwargs: Any) -> Any:
        option = super().create_option(name, value, label, *args, **kwargs)
        contact = getattr(value, "instance", None)
        why = self.suppressed.get(contact.email.lower()) if contact is not None else None
        if contact is not None and contact.pk in self.enrolled:
            option["attrs"]["disabled"] = True
            option["label"] = gettext("%(person)s (already enrolled)") % {"person": label}
        elif why:
            option["attrs"]["disabled"] = True
            option["label"] = gettext("%(person)s (suppressed: %(why)s)") % {
                "person": label,
                "why": why,
            }
        return option


class Pasted(NamedTuple):
    email: str
    first_name: str = ""
    last_name: str = ""


def _pasted_items(text: str) -> list[str]:
    """Split at new lines, and at commas and semicolons outside quotes and angle brackets (a
    ""Souza, Ana" <ana@example.com>" is one item); a quote left open ends with its line. A name
    written "Last, First <addr>" without quotes stays one item too: a comma that follows words
    with no address, before a "First <addr>", is the name's own."""
    items: list[tuple[str, str]] = []  # (text, the separator before it)
    current: list[str] = []
    before = "\n"
    quoted = angled = False
    for char in text:
        if char in "\n\r":
            items.append(("".join(current), before))
            current, quoted, angled, before = [], False, False, "\n"
            continue
        if char == '"':
            quoted = not quoted
        elif char == "<" and not quoted:
            angled = True
        elif char == ">" and not quoted:
            angled = False
        elif char in ",;" and not quoted and not angled:
            items.append(("".join(current), before))
            current, before = [], char
            continue
        current.append(char)
    items.append(("".join(current), before))
    joined: list[str] = []
    for item, separator in ((i.strip(), sep) for i, sep in items):
        if not item:
            continue
        last = joined[-1] if joined else ""
        name, angle, rest = item.partition("<")
        if separator == "," and angle and name.strip() and last and not set('@<"') & set(last):
            joined[-1] = f'"{last}, {name.strip()}" <{rest}'
        else:
            joined.append(item)
    return joined


def _candidates(item: str) -> list[tuple[str, str]]:
    """The (name, address) pairs of one pasted item. Bare addresses may be separated by spaces;
    "Carl Smith carl@example.com" is one person; words with no address are one item, given back
    whole."""
    if "<" in item or '"' in item:
        found = getaddresses([item])
        name, address = found[0] if len(found) == 1 else ("", "")
        return [(decoded(name), address or item)]
    tokens = item.split()
    at = ["@" in token for token in tokens]
    if all(at):
        return [("", token) for token in tokens]
    if at[-1] and not any(at[:-1]):
        return [(decoded(" ".join(tokens[:-1])), tokens[-1])]
    if not any(at):
        return [(item, item)]  # words, not an address: they come back as they were written
    return [("", token) for token in tokens]  # addresses with a typo among them


def _first_and_last(name: str) -> tuple[str, str]:
    """ "Souza, Ana" is Ana Souza; otherwise the first word is the first name and the rest the
    last ("Ana Souza Lima": Ana, Souza Lima)."""
    name = " ".join(name.split())
    if "," in name:
        last, _, first = name.partition(",")
        return first.strip()[:100], last.strip()[:100]
    first, _, last = name.partition(" ")
    return first[:100], last[:100]


class EnrollForm(forms.Form):
    contacts = forms.ModelMultipleChoiceField(
        queryset=Contact.objects.none(),
        widget=_PeopleChecklist,
        required=False,
        label=gettext_lazy("Contacts"),
    )
    emails = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label=gettext_lazy("Or paste addresses"),
        help_text=gettext_lazy(
            "One per line or separated by commas or semicolons, with or without a name; new ones "
            "are added to your contacts."
        ),
    )

    def __init__(
        self, *args: Any, tenant_id: int, enrolled: Collection[int] = frozenset(), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["contacts"].queryset = Contact.objects.filter(  # type: ignore[attr-defined]
            tenant_id=tenant_id
        )
        self.fields["contacts"].widget.suppressed = suppressed_contacts(tenant_id)
        self.fields["contacts"].widget.enrolled = enrolled
        # What was pasted that is not an address: the good ones are enrolled all the same and
        # these are given back in the field to be corrected (one typo in a list of 500 must not
        # refuse the other 499).
        self.not_addresses: list[str] = []

    def clean_emails(self) -> list[Pasted]:
        """Who was pasted: one a line or separated by commas or semicolons, each as "addr",
        "Name <addr>" or ""Last, First" <addr>"; bare addresses may also be separated by spaces."""
        field = forms.EmailField()
        people: dict[str, Pasted] = {}
        self.not_addresses = []
        for item in _pasted_items(self.cleaned_data["emails"]):
            for name, address in _candidates(item):
                try:
                    email = field.clean(address).lower()
                except ValidationError:
                    self.not_addresses.append(item if name else address)
                    continue
                first, last = _first_and_last(name)
                if email not in people or (first and not people[email].first_name):
                    people[email] = Pasted(email, first, last)
        return list(people.values())

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("contacts") and not data.get("emails"):
            if self.not_addresses:
                self.add_error("emails", self.not_addresses_error())
            else:
                raise ValidationError(gettext("Pick contacts or paste addresses to enrol."))
        return data

    def not_addresses_error(self) -> str:
        bad = self.not_addresses
        text = ngettext(
            "Not an email address: %(bad)s", "Not email addresses: %(bad)s", len(bad[:5])
        ) % {"bad": ", ".join(bad[:5])}
        if len(bad) > 5:
            more = len(bad) - 5
            text += " " + ngettext("(and %(n)s more)", "(and %(n)s more)", more) % {"n": more}
        return text


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label=gettext_lazy("Name"),
        help_text=gettext_lazy("Where it is used, e.g. “Gmail plugin”."),
    )

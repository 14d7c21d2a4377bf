"""The analytics filters, read from the query string."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from channels.forms import clean_domain
from reports.selectors import RANGES

MAX_DAYS = 366


class FilterForm(forms.Form):
    range = forms.ChoiceField(
        choices=[*RANGES.items(), ("custom", gettext_lazy("Custom dates"))],
        required=False,
        label=gettext_lazy("Range"),
    )
    start = forms.DateField(required=False, label=gettext_lazy("From"))
    end = forms.DateField(required=False, label=gettext_lazy("To"))
    domain = forms.CharField(required=False, max_length=253, label=gettext_lazy("Recipient domain"))

    def clean_domain(self) -> str:
        value = self.cleaned_data["domain"].strip()
        return clean_domain(value) if value else ""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("range") != "custom":
            return data
        if "start" in self.errors or "end" in self.errors:
            return data  # a date that is not one: its own error says so, beside it
        start, end = data.get("start"), data.get("end")
        today = timezone.localdate()
        if start is None or end is None:
            raise forms.ValidationError(gettext("Choose both dates of a custom range."))
        if start > end:
            raise forms.ValidationError(gettext("The range must start on or before its last day."))
        if start > today:
            raise forms.ValidationError(
                gettext("The range starts in the future: nothing was sent yet.")
            )
        if (end - start).days >= MAX_DAYS:
            raise forms.ValidationError(
                gettext("Choose at most %(days)s days at a time.") % {"days": MAX_DAYS}
            )
        return data

    def dates(self) -> tuple[date, date, str]:
        """The chosen first and last day and the range key; the last 30 days when the dates
        are bad (the error is shown beside them)."""
        today = timezone.localdate()
        self.is_valid()
        bad = self.non_field_errors() or any(f in self.errors for f in ("range", "start", "end"))
        key = "30" if bad else (self.cleaned_data.get("range") or "30")
        if key == "custom":
            return self.cleaned_data["start"], min(self.cleaned_data["end"], today), key
        return today - timedelta(days=int(key) - 1), today, key

    def chosen_domain(self) -> str | None:
        self.is_valid()
        return self.cleaned_data.get("domain") or None

"""Audit rows in words. The channel audit log (``changes``) and the staff audit log
(``details``) store field names and plain values; people read them through one mapping from
those names to labels, which each app fills from its forms' field labels when it starts
(``register``), and through ``value_text`` (yes / no, "not set", a choice's name).

The ``audit_lines`` template filter (``msc_admin.humanize``) turns a stored dict into lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django import forms
from django.forms.utils import pretty_name
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from msc_admin import stored

# Field name → label, and field name → {stored value → its name}; lazy translations are kept
# as they are and read in the language of the page that shows them.
type Text = str | Promise
LABELS: dict[str, Text] = {}
VALUE_NAMES: dict[str, dict[Any, Text]] = {}
# Stored words that read the same in every field ("changed (value not recorded)"), and what
# an action stored as its English name ("blocked domain added") reads as.
WORDS: dict[str, Text] = {}
ACTIONS: dict[str, Text] = {}
# Field name → what reads its stored value in words (a value kept in another app's own form).
READERS: dict[str, Callable[[Any], str]] = {}
NOT_SET = _("not set")


def register(
    form_classes: Iterable[type[forms.Form]] = (),
    *,
    labels: Mapping[str, Text] | None = None,
    values: Mapping[str, Mapping[Any, Text]] | None = None,
    words: Mapping[str, Text] | None = None,
    actions: Mapping[str, Text] | None = None,
    readers: Mapping[str, Callable[[Any], str]] | None = None,
) -> None:
    """Add the labels (and the choices' names) of these forms' fields, then ``labels`` and
    ``values`` given outright (which win: a name that means something else in the log)."""
    for form_class in form_classes:
        for name, field in form_class.base_fields.items():
            LABELS.setdefault(name, field.label or pretty_name(name))
            choices = getattr(field, "choices", None)
            if choices and name not in VALUE_NAMES:
                VALUE_NAMES[name] = dict(choices)
    LABELS.update(labels or {})
    VALUE_NAMES.update({name: dict(named) for name, named in (values or {}).items()})
    WORDS.update(words or {})
    ACTIONS.update(actions or {})
    READERS.update(readers or {})


def action(stored_action: str) -> str:
    """An audit row's action (stored as its English name) in the reader's language."""
    return str(ACTIONS.get(stored_action, stored_action))


def label(name: str) -> str:
    return str(LABELS.get(name) or pretty_name(name))


def value_text(name: str, value: Any) -> str:
    if value is None or value == "":
        return str(NOT_SET)
    if name in READERS:
        return READERS[name](value)
    if isinstance(value, str) and stored.is_stored(value):  # a stored sentence: in words
        return stored.read(value)
    if isinstance(value, str) and value in WORDS:
        return str(WORDS[value])
    if isinstance(value, bool):
        return str(_("yes") if value else _("no"))
    named = VALUE_NAMES.get(name, {})
    if isinstance(value, str | int) and value in named:
        return str(named[value])
    if isinstance(value, list | tuple):
        return ", ".join(value_text(name, item) for item in value) or str(NOT_SET)
    if isinstance(value, dict):
        return "; ".join(f"{label(k)}: {value_text(k, v)}" for k, v in value.items())
    return str(value)


@dataclass(frozen=True)
class Line:
    label: str
    text: str


def lines(stored: dict[str, Any] | None) -> list[Line]:
    """One line per stored field: "Sending domain: not set → acme.test", "Passed: no"."""
    result = []
    for name, value in (stored or {}).items():
        if isinstance(value, dict) and set(value) == {"from", "to"}:
            text = f"{value_text(name, value['from'])} → {value_text(name, value['to'])}"
        else:
            text = value_text(name, value)
        result.append(Line(label(name), text))
    return result

"""Merge fields in templates: ``{{first_name}}``, or with a fallback: ``{{first_name|there}}``.

Deliberately not the Django template language: a template written by a user can only substitute
the fields listed here, never reach attributes, tags or filters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext_lazy

FIELDS = {
    "first_name": gettext_lazy("The contact's first name"),
    "last_name": gettext_lazy("The contact's last name"),
    "full_name": gettext_lazy("The contact's first and last name"),
    "email": gettext_lazy("The contact's email address"),
    "company": gettext_lazy("The contact's company"),
    "sender_name": gettext_lazy("Your name, as your sending identity shows it"),
    "sender_email": gettext_lazy("Your sending address"),
}

_FIELD = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|([^{}]*))?\}\}")


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    missing: tuple[str, ...]  # fields that had no value and no fallback


_BRACES = re.compile(r"\{\{|\}\}")
_NAME_AFTER_OPENING = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)")
_NAME_BEFORE_CLOSING = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def unknown_fields(text: str) -> list[str]:
    return sorted({m.group(1) for m in _FIELD.finditer(text) if m.group(1) not in FIELDS})


def broken_fields(text: str) -> list[str]:
    """What looks like a merge field but is not one, as written: an opening ``{{`` never
    closed ("{{first_name"), a closing ``}}`` never opened ("first_name}}"), ``{{ }}``. Each
    would be sent as typed."""
    rest = _FIELD.sub(" ", text)
    broken, position = [], 0
    while found := _BRACES.search(rest, position):
        if found.group() == "{{":
            line = rest[found.start() :].split("\n", 1)[0][:40]
            close = line.find("}}")
            piece = line[: close + 2] if close >= 0 else line
            position = found.start() + len(piece)
        else:
            words = rest[: found.end()].rsplit("\n", 1)[-1][-40:].split()
            piece = words[-1] if words else "}}"
            position = found.end()
        broken.append(piece.strip())
    return broken


def suggestion(piece: str) -> str:
    """How a broken merge field is written whole: "{{first_name}}" for "{{first_name" or
    "{{last", else a field for example."""
    found = _NAME_AFTER_OPENING.search(piece) or _NAME_BEFORE_CLOSING.search(piece)
    name = found.group(1) if found else ""
    fits = [f for f in FIELDS if f == name] or [f for f in FIELDS if name and f.startswith(name)]
    if len(fits) == 1:
        return "{{" + fits[0] + "}}"
    return "a field such as {{first_name}}"


def values_for(contact: Any | None, *, email: str, sender_name: str, sender_email: str) -> dict:
    first = getattr(contact, "first_name", "") or ""
    last = getattr(contact, "last_name", "") or ""
    return {
        "first_name": first,
        "last_name": last,
        "full_name": f"{first} {last}".strip(),
        "email": email,
        "company": getattr(contact, "company", "") or "",
        "sender_name": sender_name,
        "sender_email": sender_email,
    }


def render(subject: str, body: str, values: dict[str, str]) -> Rendered:
    missing: set[str] = set()

    def substitute(match: re.Match[str]) -> str:
        name, fallback = match.group(1), match.group(2)
        value = values.get(name, "")
        if value:
            return value
        if fallback is not None:
            return fallback.strip()
        missing.add(name)
        return ""

    # A subject is one line: a merge value can never smuggle a line break into the header.
    rendered_subject = " ".join(_FIELD.sub(substitute, subject).split())
    return Rendered(rendered_subject, _FIELD.sub(substitute, body), tuple(sorted(missing)))

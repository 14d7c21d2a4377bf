"""Sentences the product stores and people read later, each in their own language.

A sentence written into a row (a send's status detail, a suppression's detail, a live-feed
entry, a sending-domain finding…) is stored as its English message id and its values, never as
text in one language: ``stored(sentence(gettext_noop("Hard bounce on %(day)s"), day=when))``
writes ``{"t": "Hard bounce on %(day)s", "v": {"day": {"day": "2026-11-12T…"}}}`` in the text
column, and ``read`` (the ``said`` template filter) translates the message id and fills in the
values in the reader's language when a page shows it. The message id is the code: a string
marked with ``gettext_noop`` or ``gettext_lazy`` where it is written is in every catalogue.

Values are kept as data: text as is (a subject, an address, a server's words), a moment as ISO
and written in the reader's format (``Day``: a date; ``When``: a time, with its date unless it
is today), a bounce reason by its code (``Reason``), a sentence inside a sentence as a sentence.

Rows written before this (plain text) read as they are, through ``gettext`` so that a fixed
sentence stored in English (``gettext_noop``) still reads in the reader's language.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format
from django.utils.functional import Promise
from django.utils.translation import gettext, ngettext, pgettext

_START = '{"t":'


@dataclass(frozen=True)
class Day:
    """A moment read as its day ("Nov 12, 2026", "12 de novembro de 2026")."""

    at: datetime


@dataclass(frozen=True)
class When:
    """A moment read as a time, with its day unless it is today ("12:00:05 UTC")."""

    at: datetime


@dataclass(frozen=True)
class Reason:
    """A bounce reason, by its code ("mailboxfull"), read as its words ("Mailbox full"; with
    ``lower``, "mailbox full", inside a sentence)."""

    code: str
    lower: bool = False


class Sentence(str):
    """A sentence in the current language (usable wherever text is), that remembers its English
    message id and values so that it can be stored (``stored``) and read again in another."""

    msgid: str
    plural: str
    context: str
    values: dict[str, Any]

    def __new__(
        cls, msgid: str, values: dict[str, Any], *, plural: str = "", context: str = ""
    ) -> Sentence:
        text = _render(msgid, plural, context, values)
        made = super().__new__(cls, text)
        made.msgid, made.plural, made.context, made.values = msgid, plural, context, values
        return made

    # Immutable, as str is: copies (``dataclasses.asdict``, ``copy.deepcopy``) are itself, and
    # a pickled one is made again from its message id and values.
    def __copy__(self) -> Sentence:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Sentence:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return (_made, (self.msgid, self.values, self.plural, self.context))

    def data(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "t": self.msgid,
            "v": {k: _data(v) for k, v in self.values.items()},
        }
        if self.plural:
            found["p"] = self.plural
        if self.context:
            found["c"] = self.context
        return found


def _made(msgid: str, values: dict[str, Any], plural: str, context: str) -> Sentence:
    return Sentence(msgid, values, plural=plural, context=context)


def sentence(msgid: str | Promise, /, **values: Any) -> Sentence:
    """A sentence and its values. ``msgid`` is its English text with named placeholders, marked
    for the catalogues where it is written: ``gettext_noop("…")``, ``pgettext_lazy(context,
    "…")``, or ``ngettext_lazy(singular, plural, "n")``, whose form the value ``n`` chooses."""
    if isinstance(msgid, str):
        return Sentence(msgid, values)
    kw = getattr(msgid, "_kw", {}) or {}
    args = tuple(getattr(msgid, "_args", ()))
    if "singular" in kw and "plural" in kw:
        return Sentence(kw["singular"], values, plural=kw["plural"], context=kw.get("context", ""))
    if len(args) == 2:  # pgettext_lazy(context, msgid)
        return Sentence(str(args[1]), values, context=str(args[0]))
    if len(args) == 1:
        return Sentence(str(args[0]), values)
    return Sentence(str(msgid), values)


def stored(text: str, max_length: int = 500) -> str:
    """What a text column keeps: a ``Sentence`` as its message id and values (its longest text
    values shortened to fit ``max_length``), any other text as it is (cut to fit)."""
    if not isinstance(text, Sentence):
        return str(text)[:max_length]
    return _fitted(text.data(), max_length, lambda: str(text))


def stored_sentence(msgid: str, /, max_length: int = 500, **values: Any) -> str:
    """``stored(sentence(msgid, **values), max_length)`` for a plain message id, without
    rendering the sentence in the current language first: for a writer that only stores it (a
    batch of bounces stores three sentences a bounce, and rendering each was a tenth of
    ingestion's CPU)."""
    data = {"t": msgid, "v": {k: _data(v) for k, v in values.items()}}
    return _fitted(data, max_length, lambda: _render(msgid, "", "", values))


def _fitted(data: dict[str, Any], max_length: int, rendered: Callable[[], str]) -> str:
    """``data`` encoded, its longest text values shortened to fit ``max_length``; the rendered
    text cut to fit when nothing can be shortened enough."""
    encoded = _encode(data)
    while len(encoded) > max_length:
        longest = _longest(data)
        if longest is None:
            return rendered()[:max_length]
        holder, key = longest
        value = holder[key]
        holder[key] = value[: max(0, len(value) - (len(encoded) - max_length) - 1)] + "…"
        encoded = _encode(data)
    return encoded


def again(text: str) -> str:
    """A stored text to put inside another sentence: a stored sentence as a ``Sentence`` (read
    in the reader's language with the rest), any other text as it is."""
    if not is_stored(text):
        return text
    try:
        data = json.loads(text)
        return Sentence(data["t"], data["v"], plural=data.get("p", ""), context=data.get("c", ""))
    except (ValueError, KeyError, TypeError):
        return text


def is_stored(text: str) -> bool:
    return isinstance(text, str) and text.startswith(_START)


def read(text: str | None) -> str:
    """A stored text in the reader's language: a stored sentence rendered, a fixed sentence
    stored in English translated, anything else (a server's words) as it is."""
    if not text:
        return ""
    if is_stored(text):
        try:
            data = json.loads(text)
            return _render(data["t"], data.get("p", ""), data.get("c", ""), _values(data["v"]))
        except (ValueError, KeyError, TypeError):
            return text
    return gettext(text)


def values_of(text: str) -> dict[str, Any]:
    """A stored sentence's raw values (codes, ISO dates…): {} for plain text."""
    if not is_stored(text):
        return {}
    try:
        found = json.loads(text).get("v", {})
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


# What a value of a kind reads as; ``bounces`` (which knows the reasons' words) fills "reason".
READERS: dict[str, Callable[[str], str]] = {}


def _data(value: Any) -> Any:
    if isinstance(value, Sentence):
        return value.data()
    if isinstance(value, dict):  # a value of a stored sentence (``again``)
        return value
    if isinstance(value, Promise):  # a lazy translation: its message id, read when shown
        args: tuple[Any, ...] = tuple(getattr(value, "_args", ()))
        if len(args) == 1 and isinstance(args[0], str):
            return {"t": args[0], "v": {}}
        if len(args) == 2 and all(isinstance(arg, str) for arg in args):
            return {"t": args[1], "c": args[0], "v": {}}
        return str(value)
    if isinstance(value, Day):
        return {"day": value.at.isoformat()}
    if isinstance(value, When):
        return {"when": value.at.isoformat()}
    if isinstance(value, Reason):
        return {"reason": value.code, "lower": True} if value.lower else {"reason": value.code}
    if isinstance(value, list | tuple):  # read as a list: "a, b, c"
        return {"all": [_data(item) for item in value]}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return str(value)


def _value(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if "t" in value:
        return _render(value["t"], value.get("p", ""), value.get("c", ""), _values(value["v"]))
    if "day" in value:
        return _day(value["day"])
    if "when" in value:
        return _when(value["when"])
    if "reason" in value:
        return _reason(str(value["reason"]), lower=bool(value.get("lower")))
    if "all" in value:
        return ", ".join(str(_value(item)) for item in value["all"])
    return ""


def _values(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _value(v) for k, v in values.items()}


def _render(msgid: str, plural: str, context: str, values: Mapping[str, Any]) -> str:
    shown = {k: _value(v) if isinstance(v, dict) else _shown(v) for k, v in values.items()}
    if plural:
        n = int(values.get("n", 0))
        text = ngettext(msgid, plural, n)
    elif context:
        text = pgettext(context, msgid)
    else:
        text = gettext(msgid)
    try:
        return text % shown if shown else text
    except (KeyError, ValueError, TypeError):
        return msgid % shown if shown else msgid


def _shown(value: Any) -> Any:
    if isinstance(value, Day):
        return _day(value.at.isoformat())
    if isinstance(value, When):
        return _when(value.at.isoformat())
    if isinstance(value, Reason):
        return _reason(value.code, lower=value.lower)
    if isinstance(value, list | tuple):
        return ", ".join(str(_shown(item)) for item in value)
    return value


def _reason(code: str, *, lower: bool) -> str:
    reader = READERS.get("reason")
    words = reader(code) if reader else code
    return f"{words[:1].lower()}{words[1:]}" if lower else words


def _moment(iso: str) -> datetime | None:
    moment = parse_datetime(iso)
    if moment is None:
        return None
    return timezone.localtime(moment) if timezone.is_aware(moment) else moment


def _day(iso: str) -> str:
    moment = _moment(iso)
    return _day_words(moment.date(), translation.get_language()) if moment else iso


@functools.lru_cache(maxsize=256)
def _day_words(day: date, language: str | None) -> str:
    """A day as the UI writes it, in a language (a batch of bounces names a few days many
    times: each is formatted once)."""
    with translation.override(language):
        return date_format(day, "DATE_FORMAT")


def _when(iso: str) -> str:
    """A time as the Outbox says it: with its date unless it is today."""
    moment = _moment(iso)
    if moment is None:
        return iso
    if moment.date() == timezone.localtime().date():
        return date_format(moment, "H:i:s T")  # 12:00:05 UTC
    # Each language orders the day and month its own way ("Nov 30, 12:00:05 UTC").
    later = pgettext(
        "date format of a later day, see "
        "https://docs.djangoproject.com/en/stable/ref/templates/builtins/#date",
        "M j, H:i:s T",
    )
    return date_format(moment, later)


def _encode(data: dict[str, Any]) -> str:
    return _ENCODE(data)


# What ``json.dumps(data, ensure_ascii=False, separators=(",", ":"))`` writes, with one encoder
# made once: ``json.dumps`` with options makes a new encoder at every call (a batch of bounces
# stores three sentences a bounce; the encoder's making was a quarter of each).
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _longest(data: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """The longest text value (in this sentence or one inside it) worth shortening."""
    best: tuple[dict[str, Any], str] | None = None
    size = 8
    stack = [data["v"]]
    while stack:
        values = stack.pop()
        for key, value in values.items():
            if isinstance(value, str) and len(value) > size:
                best, size = (values, key), len(value)
            elif isinstance(value, dict) and isinstance(value.get("v"), dict):
                stack.append(value["v"])
    return best

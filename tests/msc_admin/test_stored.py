"""``msc_admin.stored``: a sentence is stored as its message id and values, and read in the
language (and date format) of whoever reads it."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import UTC, datetime, timedelta

from django.utils import timezone, translation
from django.utils.translation import gettext_noop, ngettext_lazy, pgettext_lazy

from msc_admin.stored import (
    Day,
    Reason,
    When,
    again,
    is_stored,
    read,
    sentence,
    stored,
    stored_sentence,
    values_of,
)

RETRY = gettext_noop("Temporary problem: %(why)s. Next try at %(when)s.")
UNRESOLVED = gettext_noop("The name %(host)s does not resolve to an address.")


def _in(language: str, text: str) -> str:
    with translation.override(language):
        return read(text)


def test_a_sentence_written_in_one_language_reads_in_each_readers() -> None:
    later = timezone.now() + timedelta(days=2)
    with translation.override("es"):  # the writer's language leaves no trace in the row
        why = sentence(UNRESOLVED, host="smtp.acme.test")
        text = stored(sentence(RETRY, why=why, when=When(later)))
    assert is_stored(text)
    assert json.loads(text)["v"]["when"] == {"when": later.isoformat()}
    assert _in("en", text).startswith(
        "Temporary problem: The name smtp.acme.test does not resolve to an address."
    )
    assert _in("pt-br", text).startswith("Problema temporário: O nome smtp.acme.test não aponta")
    assert _in("es", text).startswith("Problema temporal: El nombre smtp.acme.test no")


def test_a_day_is_written_in_the_readers_format() -> None:
    day = datetime(2026, 11, 12, 15, 0, tzinfo=UTC)
    hard = gettext_noop("Hard bounce on %(day)s, from “%(subject)s”")
    text = stored(sentence(hard, day=Day(day), subject="Intro"))
    assert _in("en", text) == "Hard bounce on Nov 12, 2026, from “Intro”"
    assert _in("pt-br", text) == "Devolução permanente em 12 de nov. de 2026, de “Intro”"
    assert _in("es", text).startswith("Rebote permanente el 12 de nov. de 2026")


def test_plural_forms_and_contexts_come_from_the_lazy_markers() -> None:
    gave_up = ngettext_lazy(
        "Gave up after %(n)s attempt: %(why)s", "Gave up after %(n)s attempts: %(why)s", "n"
    )
    one, zero = (stored(sentence(gave_up, n=n, why="421")) for n in (1, 0))
    assert _in("en", one) == "Gave up after 1 attempt: 421"
    assert _in("pt-br", one) == "Desistimos após 1 tentativa: 421"
    assert _in("pt-br", zero) == "Desistimos após 0 tentativas: 421"  # zero is plural
    created = stored(sentence(pgettext_lazy("audit action", "created")))
    assert (_in("en", created), _in("es", created)) == ("created", "creado")


def test_a_long_value_is_shortened_and_the_row_stays_a_sentence() -> None:
    text = stored(sentence(UNRESOLVED, host="x" * 900), max_length=300)
    assert len(text) <= 300 and is_stored(text)
    assert _in("en", text).startswith("The name xxx") and "…" in _in("en", text)


def test_plain_text_reads_as_it_is_and_a_sentence_nests_in_another() -> None:
    assert _in("pt-br", "550 5.1.1 user unknown") == "550 5.1.1 user unknown"
    assert _in("pt-br", "The campaign is paused.") == "A campanha está pausada."
    assert values_of("550 5.1.1") == {}
    inner = stored(sentence(UNRESOLVED, host="h.test"))
    outer = stored(sentence(RETRY, why=again(inner), when=When(timezone.now())))
    assert "O nome h.test" in _in("pt-br", outer)
    assert read('{"t": broken') == '{"t": broken'
    copied = copy.deepcopy(sentence(UNRESOLVED, host="h.test"))
    assert stored(pickle.loads(pickle.dumps(copied))) == inner  # noqa: S301 - our own bytes


def test_a_sentence_stored_without_rendering_is_the_row_the_rendered_one_makes() -> None:
    """``stored_sentence`` (a batch of bounces stores its sentences without rendering them) writes
    exactly what ``stored(sentence(…))`` writes: values of every kind, shortened to fit, and
    the rendered text cut to fit when no value can be shortened."""
    at = datetime(2026, 11, 12, 9, 30, tzinfo=UTC)
    bounce = gettext_noop("Hard bounce (%(reason)s): %(said)s")
    cases = [
        (RETRY, 500, {"why": sentence(UNRESOLVED, host="h.test"), "when": When(at)}),
        (bounce, 500, {"reason": Reason("userunknown"), "said": "550 5.1.1 “gone” ü"}),
        (bounce, 500, {"reason": Reason("mailboxfull", lower=True), "said": "x" * 900}),
        (UNRESOLVED, 300, {"host": "é" * 400}),
        (
            gettext_noop("Sent on %(day)s: %(n)s of %(all)s"),
            500,
            {"day": Day(at), "n": 3, "all": ["a", "b"]},
        ),
        (gettext_noop("%(a)s"), 12, {"a": "short"}),  # nothing long enough to shorten: cut
    ]
    for language in ("en", "pt-br"):
        with translation.override(language):
            for msgid, size, values in cases:
                expected = stored(sentence(msgid, **values), size)
                assert stored_sentence(msgid, size, **values) == expected, (msgid, values)
    assert len(stored_sentence(bounce, 500, reason=Reason("x"), said="x" * 900)) <= 500

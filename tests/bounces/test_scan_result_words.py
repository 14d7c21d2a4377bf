"""An inbox scan's result line is stored as a sentence (``msc_admin.stored``) on the inbox's
cursor and read in each reader's language, with each language's plural forms."""

from __future__ import annotations

from django.utils import translation

from bounces.inbox import ScanReport
from msc_admin.stored import is_stored, read, stored


def _in(language: str, text: str) -> str:
    with translation.override(language):
        return read(text)


def test_a_scans_result_reads_in_each_language_with_its_plural_forms() -> None:
    report = ScanReport(read=1, found=0, complaints=2, more=True)
    with translation.override("es"):  # the worker's language leaves no trace in the row
        line = stored(report.summary)
    assert is_stored(line)
    assert _in("en", line) == (
        "1 new message read, 0 bounces recorded, 2 complaints. More to read: the next scan "
        "carries on."
    )
    assert _in("pt-br", line) == (
        "1 mensagem nova lida, 0 devoluções registradas, 2 reclamações. Há mais para ler: a "
        "próxima verificação continua."
    )
    assert _in("es", line).startswith("1 mensaje nuevo leído, 0 rebotes registrados, 2 quejas.")


def test_a_scans_problem_reads_in_each_language() -> None:
    busy = stored(ScanReport(ok=False, problem="A scan of this inbox is already running.").summary)
    assert _in("pt-br", busy) == "Uma verificação desta caixa de entrada já está em andamento."

"""``manage.py parse_bounces PATH [PATH ...]``: one JSON line per file, sorted by file name.

The output is a contract used by operators and acceptance checks: keep its shape exact. Each line
has the file's name, the parser's ``kind``, ``recipients`` (address, status, smtp_code, reason,
hard, diagnostic, and the ``evidence`` that decided it), ``original_message_id``, ``error`` when
the file could not be read or parsed, the message's ``evidence`` and the ``parser_version``.
``manage.py`` answers this command without starting Django (``bounceparse.cli``); the output is
the same.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from bounceparse.cli import files_under, line_for, lines

__all__ = ["Command", "files_under", "line_for"]


class Command(BaseCommand):
    help = "Parse bounce messages (files or directories of files); print one JSON line per file."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH")

    def handle(self, *args: Any, **options: Any) -> None:
        for text in lines(options["paths"]):
            self.stdout.write(text)

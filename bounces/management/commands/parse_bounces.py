"""``manage.py parse_bounces PATH [PATH ...]``: one JSON line per file, sorted by file name.

The output is a contract used by operators and acceptance checks: keep its shape exact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

import bounceparse


def files_under(paths: list[str]) -> list[Path]:
    """Every file named, and every file directly inside a directory named, sorted by name."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += [p for p in path.iterdir() if p.is_file()]
        else:
            found.append(path)  # a missing file still gets its line, with an error
    return sorted(found, key=lambda p: (p.name, str(p)))


def line_for(path: Path) -> dict[str, Any]:
    """One file's line. Only the start of a file is read, as much as the parser looks at: a huge
    file costs no more memory or time than one at the size cap."""
    limits = bounceparse.Limits()
    try:
        with path.open("rb") as file:
            raw = file.read(limits.max_bytes)
    except OSError as exc:
        return {
            "file": path.name,
            "kind": bounceparse.NOT_BOUNCE,
            "recipients": [],
            "original_message_id": None,
            "error": f"cannot read: {exc.strerror or exc}",
        }
    return {"file": path.name, **bounceparse.parse(raw, limits).as_dict()}


class Command(BaseCommand):
    help = "Parse bounce messages (files or directories of files); print one JSON line per file."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("paths", nargs="+", metavar="PATH")

    def handle(self, *args: Any, **options: Any) -> None:
        for path in files_under(options["paths"]):
            self.stdout.write(json.dumps(line_for(path), ensure_ascii=False))

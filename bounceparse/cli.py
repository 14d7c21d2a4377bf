"""``python -m bounceparse PATH [PATH ...]``: one JSON line per file, sorted by file name.

The same output as ``manage.py parse_bounces`` (which uses these functions, and which
``manage.py`` runs through here without starting Django): a contract used by operators and
acceptance checks, so its shape stays exact.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .core import NOT_BOUNCE, Limits, parse
from .evidence import PARSER_VERSION, Evidence


def files_under(paths: Iterable[str]) -> list[Path]:
    """Every file named, and every file directly inside a directory named, sorted by name."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += [p for p in path.iterdir() if p.is_file()]
        else:
            found.append(path)  # a missing file still gets its line, with an error
    return sorted(found, key=lambda p: (p.name, str(p)))


def line_for(path: Path, limits: Limits | None = None) -> dict[str, Any]:
    """One file's line. Only the start of a file is read, as much as the parser looks at: a huge
    file costs no more memory or time than one at the size cap."""
    limits = limits or Limits()
    try:
        with path.open("rb") as file:
            raw = file.read(limits.max_bytes)
    except OSError as exc:
        error = f"cannot read: {exc.strerror or exc}"
        return {
            "file": path.name,
            "kind": NOT_BOUNCE,
            "recipients": [],
            "original_message_id": None,
            "error": error,
            "evidence": Evidence("none", "refused", error).as_dict(),
            "parser_version": PARSER_VERSION,
        }
    return {"file": path.name, **parse(raw, limits).as_dict()}


def lines(paths: Iterable[str]) -> Iterator[str]:
    limits = Limits()
    for path in files_under(paths):
        yield json.dumps(line_for(path, limits), ensure_ascii=False)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m bounceparse PATH [PATH ...]", file=sys.stderr)
        return 2
    write = sys.stdout.write
    try:
        for text in lines(argv):
            write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader stopped early (| head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0

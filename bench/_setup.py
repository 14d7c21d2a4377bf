"""Shared set-up for benchmarks: Django on a throwaway database (PostgreSQL when DATABASE_URL
points at one, else in-memory SQLite), created and dropped by Django's own test machinery."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "msc_admin.settings")


@contextmanager
def django_database(*, keep: str | None = None, reuse: str | None = None) -> Iterator[str]:
    """A throwaway database for the benchmark, dropped after it; ``keep``: create it under this
    name and leave it there; ``reuse``: use this database as it is (made by an earlier ``keep``),
    and leave it there too."""
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    # DEBUG off, as production runs (and as Django's test runner does): with it on, every
    # query is also logged in memory, about 8 % of the sending pipeline's CPU.
    setup_test_environment(debug=False)
    from django.conf import settings

    # Without DEBUG the manifest storage wants a collectstatic run; pages measured here need
    # only their static URLs, so plain ones do (a dictionary look-up either way).
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    old_name = connection.settings_dict["NAME"]
    if reuse:
        connection.close()
        settings.DATABASES[connection.alias]["NAME"] = reuse
        connection.settings_dict["NAME"] = reuse
        connection.ensure_connection()
    else:
        if keep:
            connection.settings_dict.setdefault("TEST", {})["NAME"] = keep
        connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        yield f"{connection.vendor} {connection.Database.__name__}"
    finally:
        if keep or reuse:
            connection.close()
        else:
            connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()


def machine() -> str:
    """The machine, as the README's table names it: CPU, cores, memory, Python, OS."""
    cpu = platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = f"{line.split(':', 1)[1].strip()} ({platform.machine()})"
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {round(kib / 1024**2)} GiB"
    system = platform.freedesktop_os_release().get("PRETTY_NAME", platform.system())
    return f"{cpu}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}, {system}"


def report(rows: list[dict[str, str]]) -> None:
    """Hand this benchmark's figures to ``python -m bench`` (which sets MSC_BENCH_JSON): each
    row has benchmark, product, baseline, ratio and target, as the README's table does."""
    import json

    path = os.environ.get("MSC_BENCH_JSON")
    if path:
        Path(path).write_text(json.dumps(rows))

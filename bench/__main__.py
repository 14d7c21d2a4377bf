"""Every benchmark in one command, and one table: ``python -m bench``.

Each benchmark runs in its own process (each creates and drops its own database), prints its
own lines as it goes, and hands its figures back; the table at the end is the README's.
``DATABASE_URL`` should point at PostgreSQL, as for each benchmark alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from bench._setup import ROOT, machine

BENCHMARKS = ("bounces", "sending", "analytics")
# Five minutes of a crowd on the whole stack: run on purpose (``--only load``), not by default.
ON_REQUEST = ("load",)


def _database() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return "SQLite"
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return f"PostgreSQL {str(row[0]).split()[0]} on loopback" if row else "PostgreSQL"
    except psycopg.Error:
        return "PostgreSQL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--only", nargs="*", choices=BENCHMARKS + ON_REQUEST, default=list(BENCHMARKS)
    )
    parser.add_argument(
        "--analytics-sizes", default="100000,1000000", help="passed to bench.analytics --sizes"
    )
    args = parser.parse_args()
    rows: list[dict[str, str]] = []
    failed = []
    for name in args.only:
        extra = ["--sizes", args.analytics_sizes] if name == "analytics" else []
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
            path = out.name
        env = {**os.environ, "MSC_BENCH_JSON": path}
        print(f"==> bench.{name}", file=sys.stderr, flush=True)
        done = subprocess.run(  # noqa: S603 - our own interpreter and module names
            [sys.executable, "-m", f"bench.{name}", *extra], cwd=ROOT, env=env, check=False
        )
        found = Path(path).read_text() if Path(path).exists() else ""
        Path(path).unlink(missing_ok=True)
        if done.returncode or not found:
            failed.append(name)
            continue
        rows += json.loads(found)
    print(f"\nLatest figures ({machine()}; {_database()}; {date.today().isoformat()}):\n")
    print("| benchmark | product | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    for row in rows:
        cells = [row[k] for k in ("benchmark", "product", "baseline", "ratio", "target")]
        print("| " + " | ".join(cells) + " |")
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

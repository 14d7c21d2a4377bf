"""A real Celery worker process, on the test database and the test Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection

from msc_admin.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[1]


def _test_database_url() -> str:
    db = connection.settings_dict
    return (
        f"postgresql://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    )


def _ping() -> bool:
    try:
        return bool(celery_app.control.ping(timeout=0.5))
    except (ConnectionError, redis.ConnectionError):  # pooled, to a Redis since restarted
        return False


@contextmanager
def celery_worker(
    name: str = "test-worker", env: dict[str, str] | None = None, *, beat: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``celery worker`` as a separate process and wait until it answers a ping.

    The worker trusts the test CA and may reach loopback servers, like the test process. With
    ``beat`` it also runs the periodic schedule of ``msc_admin.celery`` (dispatch every 5 s),
    as production's beat would: what recovers, recovers by itself.
    """
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "DB_CONN_MAX_AGE": "0",
        "MSC_OUTBOUND_ALLOW_PRIVATE": "true",
        "MSC_OUTBOUND_TIMEOUT": str(settings.MSC_OUTBOUND_TIMEOUT),
        **({"MSC_EXTRA_CA_FILE": settings.MSC_EXTRA_CA_FILE} if settings.MSC_EXTRA_CA_FILE else {}),
        **(env or {}),
    }
    logs = ROOT / "test-artifacts"
    logs.mkdir(exist_ok=True)
    log = open(logs / f"{name}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "msc_admin",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"{name}@%h",
            *(["--beat", "--schedule", str(logs / f"{name}-beat-schedule")] if beat else []),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    celery_app.conf.task_always_eager = False
    try:
        deadline = time.monotonic() + 60
        while not _ping():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not start; see test-artifacts/{name}.log")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()

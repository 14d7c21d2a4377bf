"""A real Celery worker process, on the test database and the test Redis."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import connection

from msc_admin.celery import app as celery_app
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "test-artifacts"
SEND = "sending.tasks.send_message"


def _test_database_url() -> str:
    db = connection.settings_dict
    return (
        f"postgresql://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    )


def _ping(name: str) -> bool:
    """This worker answers (not just any worker: the second of two must be up too)."""
    try:
        return bool(celery_app.control.ping(destination=[node(name)], timeout=0.5))
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
    logs = LOGS
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
        while not _ping(name):
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


# --- positive signals: what the workers have done, not how long we waited -------------------


def node(name: str) -> str:
    """The node name ``celery_worker(name)`` answers to (``-n name@%h``)."""
    return f"{name}@{socket.gethostname()}"


def log_of(name: str) -> str:
    """What the worker started as ``celery_worker(name)`` has logged so far."""
    return (LOGS / f"{name}.log").read_text(errors="replace")


def _broker() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def _task_name(raw: bytes, *, unacked: bool = False) -> str:
    message = json.loads(raw)
    if unacked:  # kept as [message, exchange, routing key]
        message = message[0]
    return str(message.get("headers", {}).get("task", ""))


def in_broker(task: str = SEND) -> list[dict]:
    """The ``task`` messages waiting in the queue, as kombu keeps them (headers carry the
    arguments as ``argsrepr``)."""
    return [
        json.loads(raw)["headers"]
        for raw in _broker().lrange("celery", 0, -1)
        if _task_name(raw) == task
    ]


def _in_flight(task: str) -> int:
    """``task`` messages waiting in the queue, or delivered to a worker and not yet acknowledged:
    with ``acks_late`` a task stays unacknowledged until it has finished, an ETA task until it
    has run."""
    client = _broker()
    waiting = sum(_task_name(raw) == task for raw in client.lrange("celery", 0, -1))
    unacked = sum(_task_name(raw, unacked=True) == task for raw in client.hvals("unacked"))
    return waiting + unacked


def _inspect(names: Iterable[str]) -> tuple[Any, list[str]]:
    nodes = [node(n) for n in names]
    return celery_app.control.inspect(destination=nodes, timeout=2), nodes


def _answered(reply: dict | None, nodes: list[str]) -> bool:
    """A worker busy in a task (``--pool=solo``) does not answer until the task ends."""
    return reply is not None and all(n in reply for n in nodes)


def idle(*names: str, task: str = SEND) -> bool:
    """No ``task`` waits in the broker, none is delivered and unfinished, and each named worker
    answers that it holds none (running, prefetched or scheduled)."""
    try:
        if _in_flight(task):
            return False
        # Asked after the broker: a task popped from the queue just before is, by now, either
        # held by its worker (and seen here) or finished.
        inspect, nodes = _inspect(names)
        for reply in (inspect.active(), inspect.reserved(), inspect.scheduled()):
            if not _answered(reply, nodes):
                return False
            for held in reply.values():
                for entry in held:
                    if entry.get("request", entry).get("name") == task:
                        return False
    except (ConnectionError, redis.ConnectionError):  # Redis coming back: not a signal yet
        return False
    return True


def wait_until_idle(*names: str, task: str = SEND, timeout: float = 60) -> None:
    """The named workers have finished every ``task`` handed to the broker: after this, anything
    those tasks were going to deliver has been delivered, and the counting can start."""
    wait_for(lambda: idle(*names, task=task), timeout, f"{', '.join(names)} to finish every {task}")


def finished(*names: str, task: str = SEND) -> int | None:
    """How many ``task`` tasks the named workers have run to the end, or ``None`` while one of
    them is busy with one or has not answered."""
    try:
        inspect, nodes = _inspect(names)
        # Counted first, then checked idle: a task counted here that had not finished would
        # still show as active below.
        stats = inspect.stats()
        active = inspect.active()
    except (ConnectionError, redis.ConnectionError):
        return None
    if not (_answered(stats, nodes) and _answered(active, nodes)):
        return None
    if any(entry["name"] == task for held in active.values() for entry in held):
        return None
    return sum(stats[n].get("total", {}).get(task, 0) for n in nodes)

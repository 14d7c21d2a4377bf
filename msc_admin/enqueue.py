"""The one way work is handed to a worker: after the transaction that made it due commits.

A task started before its rows are committed would not find them (or find them as they were), so
every task is enqueued with ``after_commit``: at the commit of the transaction around the call,
or at once in autocommit (a view, a periodic dispatcher). Imports nothing of the apps.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction


def after_commit(
    task: Any, *args: Any, countdown: float | None = None, robust: bool = False
) -> None:
    """Enqueue ``task(*args)`` (a Celery task) when the current transaction commits.

    ``robust``: for work that is saved and found again by a periodic dispatcher (a queued
    message, a pending contact import), a broker that is down is logged and the request goes on;
    the dispatcher hands the work over later. Otherwise the broker's error reaches the caller.
    """
    send = partial(task.apply_async, args, countdown=countdown)
    transaction.on_commit(send, robust=robust)

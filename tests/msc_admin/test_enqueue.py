"""Work is handed to workers one way, ``msc_admin.enqueue.after_commit``: once the transaction
that made it due has committed, never before (a worker would not find the rows yet)."""

from __future__ import annotations

import ast
from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone

from accounts.tasks import clear_expired_sessions
from msc_admin import enqueue
from tests.test_locking_services import app_sources

HANDING_OVER = {"delay", "apply_async", "delay_on_commit", "apply_async_on_commit"}


def _expired_session() -> str:
    session = SessionStore()
    session["x"] = 1
    session.create()
    Session.objects.filter(pk=session.session_key).update(
        expire_date=timezone.now() - timedelta(days=1)
    )
    assert session.session_key
    return session.session_key


@pytest.mark.django_db(transaction=True)  # real commits, as in production
def test_a_task_is_handed_over_when_its_transaction_commits_and_not_before() -> None:
    with transaction.atomic():
        key = _expired_session()
        enqueue.after_commit(clear_expired_sessions)  # eager in tests: runs when handed over
        assert Session.objects.filter(pk=key).exists()
    assert not Session.objects.filter(pk=key).exists()

    key = _expired_session()
    with pytest.raises(RuntimeError), transaction.atomic():  # rolled back: never handed over
        enqueue.after_commit(clear_expired_sessions)
        raise RuntimeError
    assert Session.objects.filter(pk=key).exists()
    key = _expired_session()
    enqueue.after_commit(clear_expired_sessions)  # autocommit: at once
    assert not Session.objects.filter(pk=key).exists()


def test_the_app_hands_tasks_over_only_through_the_helper() -> None:
    found = []
    for path, text in app_sources().items():
        if path == "msc_admin/enqueue.py":
            continue
        for node in ast.walk(ast.parse(text)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in HANDING_OVER
            ):
                found.append(f"{path}:{node.lineno} .{node.func.attr}()")
    assert not found, "use msc_admin.enqueue.after_commit:\n" + "\n".join(found)

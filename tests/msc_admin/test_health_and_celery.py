"""The health view and Celery: a real worker process on the real Redis broker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from msc_admin.celery import app as celery_app
from msc_admin.tasks import ping
from tests.workers import celery_worker


@pytest.mark.django_db
def test_health_reports_database_cache_and_broker(client: Client) -> None:
    celery_app.conf.task_always_eager = False
    response = client.get(reverse("health"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "cache": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_health_says_503_when_the_broker_is_down(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    celery_app.conf.task_always_eager = False
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:9/0")
    response = client.get(reverse("health"))
    assert response.status_code == 503
    body = response.json()
    assert body["broker"] == "error" and body["database"] == "ok" and body["status"] == "error"
    assert "127.0.0.1" not in response.content.decode()


def test_the_periodic_schedule_is_in_code_and_names_registered_tasks() -> None:
    celery_app.loader.import_default_modules()
    schedule = celery_app.conf.beat_schedule
    assert "clear-expired-sessions" in schedule
    for entry in schedule.values():
        assert entry["task"] in celery_app.tasks


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_tasks_through_redis_against_the_database() -> None:
    expired = SessionStore()
    expired["x"] = 1
    expired.create()
    Session.objects.filter(pk=expired.session_key).update(
        expire_date=timezone.now() - timedelta(days=1)
    )
    live = SessionStore()
    live["x"] = 1
    live.create()

    with celery_worker():
        assert ping.delay().get(timeout=30) == "pong"
        deleted = celery_app.send_task("accounts.tasks.clear_expired_sessions").get(timeout=30)

    assert deleted == 1
    assert not Session.objects.filter(pk=expired.session_key).exists()
    assert Session.objects.filter(pk=live.session_key).exists()

from __future__ import annotations

from celery import shared_task


@shared_task(name="msc_admin.ping")
def ping() -> str:
    """Round-trip through the broker; used by the health view and the worker tests."""
    return "pong"

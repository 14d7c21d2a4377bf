"""Celery entry points for bounce tracking: ids in, ``bounces.inbox`` does the work."""

from __future__ import annotations

from celery import shared_task

from bounces import inbox


@shared_task(acks_late=True, ignore_result=True)
def scan_inbox(channel_id: int) -> str:
    return inbox.scan(channel_id).summary


@shared_task(ignore_result=True)
def dispatch_scans() -> int:
    return inbox.dispatch_scans()

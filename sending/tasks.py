"""Thin Celery entry points: ids in, services do the work (see ``sending.pipeline``)."""

from __future__ import annotations

from celery import shared_task

from sending import domainlimits, pipeline, services


@shared_task(acks_late=True, ignore_result=True)
def send_message(message_id: int) -> str:
    return pipeline.send_run(message_id)


@shared_task(ignore_result=True)
def dispatch_due() -> int:
    return pipeline.dispatch_due()


@shared_task(acks_late=True, ignore_result=True)
def import_contacts(import_id: int) -> int:
    return services.import_run(import_id=import_id).processed_rows


@shared_task(ignore_result=True)
def classify_recent_domains() -> int:
    """Every few minutes: classify the receiving domains of recent and queued mail."""
    return domainlimits.classify_recent()

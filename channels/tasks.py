"""Thin Celery entry points of channels."""

from __future__ import annotations

from celery import shared_task

from channels import providers


@shared_task(ignore_result=True)
def classify_domains(domains: list[str]) -> int:
    """Classify these receiving domains by their MX (those not cached fresh already)."""
    return len(providers.domains_classify(domains))

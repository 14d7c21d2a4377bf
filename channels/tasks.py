"""Celery entry points for channels: ids in, the services do the work."""

from __future__ import annotations

from celery import shared_task

from channels import providers
from channels.domaincheck import services as domaincheck
from channels.models import Channel


@shared_task(ignore_result=True)
def classify_domains(domains: list[str]) -> int:
    """Classify these receiving domains by their MX (those not cached fresh already)."""
    return len(providers.domains_classify(domains))


@shared_task(ignore_result=True)
def check_sending_domains(channel_id: int) -> int:
    """Look up the channel's sending domains (SPF, DKIM, DMARC, MX); never touches its mail."""
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None:
        return 0
    return len(domaincheck.sending_domains_check(channel=channel))


@shared_task(ignore_result=True)
def recheck_sending_domains() -> int:
    return len(domaincheck.sending_domains_recheck_due())

from __future__ import annotations

from celery import shared_task
from django.contrib.sessions.models import Session
from django.utils import timezone

from accounts import services
from accounts.models import Membership


@shared_task(
    name="accounts.tasks.send_invitation",
    autoretry_for=(OSError,),
    max_retries=5,
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
)
def send_invitation(membership_id: int, language: str = "") -> None:
    # Takes an id, not the link: the token is made here and never travels through the broker.
    # ``language``: the inviting request's, for an invitee who has no language of their own.
    membership = (
        Membership.objects.select_related("user", "tenant", "invited_by")
        .filter(pk=membership_id, joined_at__isnull=True)
        .first()
    )
    if membership is None:
        return
    services.membership_send_invitation(membership=membership, language=language)


@shared_task(name="accounts.tasks.clear_expired_sessions")
def clear_expired_sessions() -> int:
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    return deleted

"""Reads across the bounce ledger and the messages it bounced."""

from __future__ import annotations

from typing import Any

from django.db.models import Case, OuterRef, QuerySet, Subquery, When
from django.db.models.functions import Coalesce, TruncDate

from bounces.models import BounceEvent
from sending.models import Message, MessageStatus


def outcomes(tenant_id: int) -> QuerySet[Any, Any]:
    """The tenant's sent mail, each message annotated as the roll-ups key and count it: ``day``,
    ``template_key``, ``step_key``, ``channel_key``, and the class and reason of the bounce that
    counts (the first not undone), for messages that are bounced. ``analytics.rollups.rebuild``
    recomputes the roll-ups from it; the analytics pages read it narrowed to one domain."""
    first = BounceEvent.objects.filter(message=OuterRef("pk"), undone_at__isnull=True).order_by(
        "pk"
    )
    return (
        Message.objects.filter(
            tenant_id=tenant_id,
            sent_at__isnull=False,
            status__in=[MessageStatus.SENT, MessageStatus.BOUNCED],
        )
        .annotate(
            day=TruncDate("sent_at"),
            template_key=Coalesce("template_id", 0),
            step_key=Coalesce("campaign_step_id", 0),
            channel_key=Coalesce("channel_id", 0),
            bounce_hard=Case(
                When(status=MessageStatus.BOUNCED, then=Subquery(first.values("hard")[:1])),
                default=None,
            ),
            bounce_reason=Subquery(first.values("reason")[:1]),
        )
        .order_by()
    )

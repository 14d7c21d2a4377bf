"""Reads across the bounce ledger and the messages it bounced."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Case, OuterRef, Q, QuerySet, Subquery, When
from django.db.models.functions import Coalesce, Lower, TruncDate

from bounces.models import BounceEvent
from msc_admin import bulk
from sending.mime import token_of
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


# --- which of our messages a report names ------------------------------------------------------
# A bounce, a complaint or a reply names our message by its Message-ID, by our token (a prefix
# of our Message-IDs: ``<msc.TOKEN@…>``), or only by recipient and time. Each look-up is one
# query for a whole batch, and never leaves the tenant.

MATCHED_FIELDS = (
    "pk",
    "message_id",
    "to_email",
    "to_domain",
    "channel_id",
    "sent_at",
    "status",
    "sender_id",
    "subject",
    "tenant_id",
    "template_id",
    "campaign_step_id",
    "enrollment_id",
)


def sent_by(tenant_id: int) -> QuerySet[Message, Message]:
    """The tenant's messages, with the fields attribution and its effects read."""
    return Message.objects.filter(tenant_id=tenant_id).only(*MATCHED_FIELDS)


def messages_by_id(tenant_id: int, ids: set[str]) -> dict[str, Message]:
    if not ids:
        return {}
    if connection.vendor != "postgresql":
        return {m.message_id: m for m in sent_by(tenant_id).filter(message_id__in=ids)}
    # Every batch of bounces asks: one prepared statement, the ids bound as one array (the
    # ORM compiled the query anew each time, and sorted the rows by the model's ordering).
    with bulk.statement_cursor() as cursor:
        cursor.execute(_BY_ID, [tenant_id, sorted(ids)])
        rows = cursor.fetchall()
    return {m.message_id: m for m in bulk.loaded(Message, _MATCHED_ATTNAMES, rows)}


# ``from_db`` takes the values in the model's field order.
_MATCHED_ATTNAMES = [
    field.attname
    for field in Message._meta.concrete_fields
    if field.primary_key or field.name in MATCHED_FIELDS or field.attname in MATCHED_FIELDS
]
_BY_ID = (
    f"SELECT {', '.join(f'm.{name}' for name in _MATCHED_ATTNAMES)}"  # noqa: S608 - our names
    f" FROM {Message._meta.db_table} m WHERE m.tenant_id = %s AND m.message_id = ANY(%s)"
)


def messages_by_token(tenant_id: int, tokens: set[str]) -> dict[str, Message]:
    if not tokens:
        return {}
    prefixes = Q()
    for token in tokens:
        prefixes |= Q(message_id__startswith=f"<msc.{token}@")
    return {token_of(m.message_id): m for m in sent_by(tenant_id).filter(prefixes)}


def messages_to(
    tenant_id: int,
    addresses: set[str],
    *,
    sent_from: datetime,
    sent_until: datetime,
    channel_id: int | None,
) -> dict[str, list[Message]]:
    """Sent (or bounced) messages to these lower-cased addresses in the time range, newest
    first per address; only the channel's when one is given."""
    if not addresses:
        return {}
    found = (
        sent_by(tenant_id)
        .annotate(address=Lower("to_email"))
        .filter(
            address__in=addresses,
            status__in=[MessageStatus.SENT, MessageStatus.BOUNCED],
            sent_at__lte=sent_until,
            sent_at__gte=sent_from,
        )
    )
    if channel_id is not None:
        found = found.filter(channel_id=channel_id)
    out: dict[str, list[Message]] = {}
    for m in found.order_by("-sent_at"):
        out.setdefault(m.to_email.lower(), []).append(m)
    return out

"""Ingest a bounce: parse, attribute to our sent message, record once, apply its effects.

Everything for one bounce happens in one transaction. The ``bounce_counted_once`` constraint is
what makes a bounce count once: two scanners that see the same message at the same time both try
the INSERT, one wins, the other's savepoint rolls back and it applies nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

import bounceparse
from accounts.models import Tenant
from channels.models import Channel
from sending import services as sending
from sending.models import (
    CAMPAIGN_ENDED_BOUNCE,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
)

from .models import RAW_CAP, Attribution, BounceEvent, BounceSource

# How far back a bounce may point when only the recipient and time tie it to a message.
RECIPIENT_WINDOW = timedelta(days=14)


@dataclass(frozen=True)
class Ingested:
    result: bounceparse.Result
    created: list[BounceEvent]
    duplicates: int


def ingest(
    *,
    tenant: Tenant,
    raw: bytes,
    source: str = BounceSource.INBOX,
    channel: Channel | None = None,
    received_at: datetime | None = None,
) -> Ingested:
    """Parse one raw message and record each failed recipient once. Not a bounce: nothing."""
    result = bounceparse.parse(raw)
    return ingest_result(
        tenant=tenant,
        result=result,
        raw=raw,
        identity=_identity_of(raw),
        source=source,
        channel=channel,
        received_at=received_at,
    )


def ingest_result(
    *,
    tenant: Tenant,
    result: bounceparse.Result,
    raw: bytes,
    identity: str,
    source: str,
    channel: Channel | None = None,
    received_at: datetime | None = None,
) -> Ingested:
    """Record each failed recipient of a parsed bounce (or ESP event) once. ``identity`` is what
    makes two sightings the same bounce: with the recipient it forms the dedupe key."""
    if result.kind != bounceparse.BOUNCE:
        return Ingested(result, [], 0)
    received_at = received_at or timezone.now()
    created: list[BounceEvent] = []
    duplicates = 0
    for recipient in result.recipients:
        message, how = attribute(
            tenant=tenant,
            channel=channel,
            result=result,
            recipient=recipient.address,
            received_at=received_at,
        )
        if how == Attribution.HEADER and source == BounceSource.WEBHOOK:
            how = Attribution.PROVIDER  # our token came back in the ESP's event metadata
        event = BounceEvent(
            tenant=tenant,
            channel=channel or (message.channel if message else None),
            message=message,
            source=source,
            dedupe_key=f"{identity}:{recipient.address}"[:128],
            recipient=recipient.address[:320],
            status=recipient.status[:12],
            smtp_code=recipient.smtp_code[:3],
            reason=recipient.reason[:24],
            hard=recipient.hard,
            diagnostic=recipient.diagnostic[:500],
            original_message_id=(result.original_message_id or "")[:255],
            attributed_by=how,
            raw=raw[:RAW_CAP],
            raw_truncated=len(raw) > RAW_CAP,
            received_at=received_at,
        )
        if record(event):
            created.append(event)
        else:
            duplicates += 1
    return Ingested(result, created, duplicates)


def record(event: BounceEvent) -> bool:
    """Insert the event and apply its effects, or do nothing if it was already recorded."""
    try:
        with transaction.atomic():
            event.save(force_insert=True)
            if event.message is not None:
                _apply(event)
    except IntegrityError:
        return False
    return True


def _apply(event: BounceEvent) -> None:
    message = Message.objects.select_for_update().get(pk=event.message_id)
    if message.status == MessageStatus.SENT:
        label = "Hard bounce" if event.hard else "Soft bounce"
        detail = f"{label} ({event.reason}): {event.diagnostic}".strip()
        sending.message_bounced(message=message, detail=detail)


_OWN_ID = re.compile(rb"^message-id:[ \t]*(<[^<>\s]{3,250}>)", re.I | re.M)


def _identity_of(raw: bytes) -> str:
    """The bounce's identity: its own Message-ID when it has one (the same bounce fetched twice,
    or by two scanners, has the same one), else a hash of its bytes with line ends normalised."""
    normal = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    head = normal.split(b"\n\n", 1)[0]
    own = _OWN_ID.search(head)
    basis = b"id:" + own.group(1) if own else b"raw:" + normal.strip()
    return hashlib.sha256(basis).hexdigest()[:40]


def attribute(
    *,
    tenant: Tenant,
    channel: Channel | None,
    result: bounceparse.Result,
    recipient: str,
    received_at: datetime,
) -> tuple[Message | None, str]:
    """Our sent message this bounce is about, and how we know. Never crosses tenants."""
    ours = Message.objects.for_tenant(tenant)
    single = len(result.recipients) == 1
    message_id = result.original_message_id
    if message_id:
        found = ours.filter(message_id=message_id).first()
        if found and (single or found.to_email.lower() == recipient):
            return found, Attribution.MESSAGE_ID
    token = result.original_headers.get("x-msc-message")
    if token:
        found = ours.filter(message_id__startswith=f"<msc.{token}@").first()
        if found and (single or found.to_email.lower() == recipient):
            return found, Attribution.HEADER
    candidates = ours.filter(
        to_email__iexact=recipient,
        status__in=[MessageStatus.SENT, MessageStatus.BOUNCED],
        sent_at__lte=received_at,
        sent_at__gte=received_at - RECIPIENT_WINDOW,
    )
    if channel is not None:
        candidates = candidates.filter(channel=channel)
    found = candidates.order_by("-sent_at").first()
    if found:
        return found, Attribution.RECIPIENT
    return None, Attribution.NONE


@transaction.atomic
def undo(*, event: BounceEvent, by: object) -> None:
    """ "Not a bounce": the event stops counting and its effects are reversed. The message is
    sent again in the ledger, and a campaign the bounce ended carries on where it stopped."""
    event = BounceEvent.objects.select_for_update().get(pk=event.pk)
    if event.undone_at is not None:
        return
    now = timezone.now()
    event.undone_at = now
    event.undone_by = by  # type: ignore[assignment]
    event.save(update_fields=["undone_at", "undone_by"])
    if event.message_id is None:
        return
    still_bounced = BounceEvent.objects.filter(
        message_id=event.message_id, undone_at__isnull=True
    ).exists()
    if still_bounced:
        return
    message = Message.objects.select_for_update().get(pk=event.message_id)
    if message.status != MessageStatus.BOUNCED:
        return
    Message.objects.filter(pk=message.pk).update(
        status=MessageStatus.SENT, bounced_at=None, status_detail=""
    )
    if message.enrollment_id is None:
        return
    resumed = Enrollment.objects.filter(
        pk=message.enrollment_id,
        status=EnrollmentStatus.ENDED,
        ended_reason=CAMPAIGN_ENDED_BOUNCE,
    ).update(status=EnrollmentStatus.ACTIVE, ended_reason="", ended_at=None)
    if resumed:
        stopped = Message.objects.filter(
            enrollment_id=message.enrollment_id,
            status=MessageStatus.FAILED,
            status_detail=CAMPAIGN_ENDED_BOUNCE,
        )
        stopped.filter(scheduled_at__gt=now).update(
            status=MessageStatus.SCHEDULED, status_detail="", failed_at=None
        )
        stopped.update(
            status=MessageStatus.QUEUED, status_detail="", failed_at=None, next_attempt_at=now
        )

"""Ingest a bounce: parse, attribute to our sent message, record once, apply its effects.

A bounce's row and its effects are written in one transaction, a batch of them (one IMAP FETCH,
one ESP post) together. The ``bounce_counted_once`` constraint is what makes a bounce count once:
two scanners that see the same message at the same time both try the INSERT, one wins, the
other's transaction rolls back and it applies nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

import bounceparse
from accounts.models import Tenant
from analytics import feed, rollups
from analytics.models import FeedKind
from channels.models import Channel
from msc_admin import bulk
from msc_admin.stored import Reason, Sentence, sentence, stored_sentence
from sending import services as sending
from sending.models import Message, MessageStatus

from . import responses, selectors, spikes
from .models import RAW_CAP, Attribution, BounceEvent, BounceSource, ResponseEvent

# How far back a bounce may point when only the recipient and time tie it to a message.
RECIPIENT_WINDOW = timedelta(days=14)


@dataclass(frozen=True)
class Ingested:
    result: bounceparse.Result
    created: list[BounceEvent]
    duplicates: int
    # A complaint, reply or auto-reply recorded now (``bounces.responses``).
    responses: list[ResponseEvent] = dataclasses.field(default_factory=list)


@dataclass(frozen=True)
class Incoming:
    """One message (or ESP event) to ingest. ``result`` and ``identity`` are given when the
    caller parsed it already (ESP events); otherwise the raw bytes are parsed here."""

    raw: bytes
    received_at: datetime | None = None
    result: bounceparse.Result | None = None
    identity: str | None = None
    reported_by: str = ""  # the ESP that reported a complaint


def ingest(
    *,
    tenant: Tenant,
    raw: bytes,
    source: str = BounceSource.INBOX,
    channel: Channel | None = None,
    received_at: datetime | None = None,
) -> Ingested:
    """Parse one raw message and record each failed recipient once. Not a bounce: nothing."""
    (done,) = ingest_many(
        tenant=tenant, items=[Incoming(raw, received_at)], source=source, channel=channel
    )
    return done


def ingest_many(
    *,
    tenant: Tenant,
    items: Sequence[Incoming],
    source: str = BounceSource.INBOX,
    channel: Channel | None = None,
) -> list[Ingested]:
    """Ingest a batch (a scan's FETCH, an ESP's post) in a handful of statements.

    Bounces already recorded are left out by one look-up; the rest are inserted together and
    their effects applied in the same transaction. If another scanner recorded one of them in the
    meantime, the constraint refuses the batch and each event is recorded on its own instead,
    under its own savepoint, so that nothing counts twice and nothing is lost. Complaints,
    replies and auto-replies among the items are recorded after the bounces, in a transaction of
    their own (``bounces.responses``).
    """
    now = timezone.now()
    results = [item.result or bounceparse.parse(item.raw) for item in items]
    wanted: list[tuple[int, bounceparse.Result, bounceparse.Recipient, datetime]] = [
        (index, result, recipient, items[index].received_at or now)
        for index, result in enumerate(results)
        if result.kind == bounceparse.BOUNCE
        for recipient in result.recipients
    ]
    matches = _Matcher(tenant, channel, [(r, rc.address, at) for _, r, rc, at in wanted])
    identities: dict[int, str] = {}
    pending: list[tuple[int, _Pending]] = []
    for index, result, recipient, received_at in wanted:
        item = items[index]
        message, how = matches.find(result, recipient.address, received_at)
        if how == Attribution.HEADER and source == BounceSource.WEBHOOK:
            how = Attribution.PROVIDER  # our token came back in the ESP's event metadata
        if message is not None and message.sent_at and received_at < message.sent_at:
            # A receiving server can answer with a bounce before our send is recorded (its
            # report is dated during the SMTP session, and mailbox and clock times are coarse):
            # a bounce never comes before its message, in the ledger or in the feed.
            received_at = message.sent_at
        identity = identities.get(index)
        if identity is None:
            identity = identities[index] = item.identity or _identity_of(item.raw)
        # The event's columns by attribute name (every one: ``_row`` reads them all). The
        # model is made only for the events recorded, once their id is known.
        values = {
            "tenant_id": tenant.pk,
            "channel_id": channel.pk if channel else (message.channel_id if message else None),
            "message_id": message.pk if message is not None else None,
            "source": source,
            "dedupe_key": f"{identity}:{recipient.address}"[:128],
            "kind": "bounce",
            "recipient": recipient.address[:320],
            "status": recipient.status[:12],
            "smtp_code": recipient.smtp_code[:3],
            "reason": recipient.reason[:24],
            "hard": recipient.hard,
            "diagnostic": recipient.diagnostic[:500],
            "original_message_id": (result.original_message_id or "")[:255],
            "attributed_by": how,
            "raw": item.raw[:RAW_CAP],
            "raw_truncated": len(item.raw) > RAW_CAP,
            "received_at": received_at,
            "created_at": None,
            "undone_at": None,
            "undone_by_id": None,
            "undone_by_parser": False,
            "evidence": recipient.evidence.as_dict(),
            "parser_version": result.parser_version,
        }
        pending.append((index, _Pending(values, message)))
    created = {event.dedupe_key: event for event in _record_batch(tenant, [p for _, p in pending])}
    out = [Ingested(result, [], 0) for result in results]
    for index, one in pending:
        done = out[index]
        # The same bounce twice in one batch: the first sighting is the one recorded.
        event = created.pop(one.values["dedupe_key"], None)
        if event is not None:
            done.created.append(event)
        else:
            out[index] = Ingested(done.result, done.created, done.duplicates + 1)
    own = channel.account_email if channel is not None and source == BounceSource.INBOX else ""
    found = [
        f
        for index, result in enumerate(results)
        if result.kind != bounceparse.BOUNCE
        for f in [
            responses.classify(
                index,
                items[index].raw,
                result,
                received_at=items[index].received_at or now,
                identity=items[index].identity or _identity_of(items[index].raw),
                own_address=own,
                reported_by=items[index].reported_by,
            )
        ]
        if f is not None
    ]
    recorded = responses.record(
        tenant=tenant, found=found, source=source, channel=channel, window=RECIPIENT_WINDOW
    )
    by_key = {event.dedupe_key: event for event in recorded}
    for f in found:
        response = by_key.get(f"{f.identity}:{f.kind}"[:128])
        if response is not None:
            out[f.index].responses.append(response)
    return out


@dataclass(frozen=True, slots=True)
class _Pending:
    """A bounce event not yet recorded: its columns by attribute name, and its message."""

    values: dict[str, Any]
    message: Message | None

    def event(self) -> BounceEvent:
        """The model, unsaved."""
        event = BounceEvent(**self.values)
        _MESSAGE.set_cached_value(event, self.message)
        return event


# Every column of a bounce event but its id, in the model's order (that of ``_insert_new``'s
# arrays).
_INSERTED = [f.attname for f in BounceEvent._meta.concrete_fields if not f.primary_key]
_ALL = ["id", *_INSERTED]
_MESSAGE = BounceEvent._meta.get_field("message")


def _row(values: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(values[name] for name in _INSERTED)


def _record_batch(tenant: Tenant, pending: list[_Pending]) -> list[BounceEvent]:
    """Insert what is new and apply its effects; returns the events recorded now."""
    fresh: list[_Pending] = []
    seen: set[str] = set()
    for one in pending:
        key = one.values["dedupe_key"]
        if key not in seen:
            seen.add(key)  # the same bounce twice in one batch counts once
            fresh.append(one)
    if not fresh:
        return []
    if connection.vendor == "postgresql":
        with transaction.atomic():
            recorded = _insert_new(fresh)
            _apply(recorded)
        return recorded
    known = _known_keys(tenant, seen)
    events = [one.event() for one in fresh if one.values["dedupe_key"] not in known]
    if not events:
        return []
    try:
        with transaction.atomic():
            BounceEvent.objects.bulk_create(events)
            _apply(events)
        return events
    except IntegrityError:
        # Recorded by someone else since the look-up: fall back to one at a time.
        for event in events:
            event.pk = None
            event._state.adding = True
        return [event for event in events if record(event)]


def _insert_new(pending: list[_Pending]) -> list[BounceEvent]:
    """PostgreSQL: one ``INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING RETURNING``.

    The batch travels as one array per column, so the statement is the same short text for any
    batch (parsed once, planned fast). A bounce recorded already, or being recorded by another
    scanner right now, is skipped by the ``bounce_counted_once`` constraint itself: PostgreSQL
    waits for the other transaction and then leaves the row out, so there is no look-up before
    and no error to fall back from. Rows go in the order of their keys, so two scanners with
    overlapping batches wait for each other instead of deadlocking. Only the rows recorded
    become models.
    """
    pending = sorted(pending, key=lambda one: one.values["dedupe_key"])
    now = timezone.now()
    for one in pending:
        one.values["created_at"] = now
    found = bulk.insert(
        BounceEvent,
        _INSERTED,
        [_row(one.values) for one in pending],
        conflict="(tenant_id, dedupe_key)",
        returning=("id", "dedupe_key"),
    )
    ids = {key: pk for pk, key in found}
    kept = [
        (ids[one.values["dedupe_key"]], one) for one in pending if one.values["dedupe_key"] in ids
    ]
    # As read from the database (``bulk.loaded``), with the message each was attributed to.
    recorded = bulk.loaded(BounceEvent, _ALL, [(pk, *_row(one.values)) for pk, one in kept])
    for event, (_, one) in zip(recorded, kept, strict=True):
        _MESSAGE.set_cached_value(event, one.message)
    return recorded


def _known_keys(tenant: Tenant, keys: set[str]) -> set[str]:
    found = BounceEvent.objects.filter(tenant=tenant, dedupe_key__in=keys)
    return set(found.values_list("dedupe_key", flat=True))


def record(event: BounceEvent) -> bool:
    """Insert the event and apply its effects, or do nothing if it was already recorded."""
    try:
        with transaction.atomic():
            event.save(force_insert=True)
            _apply([event])
    except IntegrityError:
        return False
    return True


def _apply(events: list[BounceEvent]) -> None:
    """Mark the messages bounced (ending each person's campaign) and tell each sender."""
    details: dict[int, str] = {}
    first: dict[int, BounceEvent] = {}
    for event in events:
        if event.message_id is not None and event.message_id not in details:
            # Stored as the sentence ``message_detail`` makes, never rendered here.
            text, values = _detail_words(event.hard, event.reason, event.diagnostic)
            details[event.message_id] = stored_sentence(text, **values)
            first[event.message_id] = event
    kinds = {pk: bounce_kind(event) for pk, event in first.items()}
    changed = sending.messages_bounced(details, kinds=kinds)
    if not changed:
        return
    rollups.count_bounces(
        (first[pk].message, first[pk].hard, first[pk].reason, 1) for pk in changed
    )
    entries = []
    for pk in changed:
        event = first[pk]
        message = event.message
        assert message is not None
        # ``feed_text``, stored as the feed stores it.
        words, values = _feed_words(event.hard, event.recipient, event.reason, message.subject)
        text, link = stored_sentence(words, 300, **values), _link(event)
        entries.append((message.sender_id, FeedKind.BOUNCED, text, link, event.received_at))
    feed.notify_at(event.tenant_id, entries)
    channels = {first[pk].message.channel_id for pk in changed}  # type: ignore[union-attr]
    spikes.check(events[0].tenant_id, {pk for pk in channels if pk is not None})
    spikes.check_providers(events[0].tenant_id, {first[pk].message.to_domain for pk in changed})  # type: ignore[union-attr]


def bounce_kind(event: BounceEvent) -> sending.BounceKind:
    """What the bounce does to its message's person and address (hard: suppressed)."""
    code = f"{event.smtp_code} {event.status}".strip()
    return sending.BounceKind(hard=event.hard, event_id=event.pk, code=code, at=event.received_at)


def message_detail(event: BounceEvent) -> Sentence:
    """Why a bounced message is where it is, as the Outbox shows it."""
    return bounce_detail(event.hard, event.reason, event.diagnostic)


def bounce_detail(hard: bool, reason: str, diagnostic: str) -> Sentence:
    """ "Hard bounce (Mailbox does not exist): 550 5.1.1 …", stored as a sentence whose reason
    is its code (``msc_admin.stored``): the sending worker reads a soft bounce's reason from
    it, and each reader reads it in their language."""
    text, values = _detail_words(hard, reason, diagnostic)
    return sentence(text, **values)


def _detail_words(hard: bool, reason: str, diagnostic: str) -> tuple[str, dict[str, Any]]:
    said = diagnostic.strip()
    if hard:
        text = gettext_noop("Hard bounce (%(reason)s): %(said)s")
        bare = gettext_noop("Hard bounce (%(reason)s)")
    else:
        text = gettext_noop("Soft bounce (%(reason)s): %(said)s")
        bare = gettext_noop("Soft bounce (%(reason)s)")
    if not said:
        return bare, {"reason": Reason(reason)}
    return text, {"reason": Reason(reason), "said": said}


class _Subject(Protocol):
    @property
    def subject(self) -> str: ...


# A bounce's feed entry after an admin said it was not one.
UNDONE_IN_FEED = gettext_noop(
    "Not a bounce, an admin said: the email to %(to)s (“%(subject)s”) counts as sent again."
)


def _link(event: BounceEvent) -> str:
    """What a bounce's feed entry links to (and is found again by)."""
    return f"/bounces/{event.pk}/"


def feed_text(event: BounceEvent, message: _Subject) -> Sentence:
    """The sender's live-feed entry about a bounce."""
    text, values = _feed_words(event.hard, event.recipient, event.reason, message.subject)
    return sentence(text, **values)


def _feed_words(hard: bool, to: str, reason: str, subject: str) -> tuple[str, dict[str, Any]]:
    text = (
        gettext_noop("%(to)s bounced (%(reason)s, hard): %(subject)s")
        if hard
        else gettext_noop("%(to)s bounced (%(reason)s, soft): %(subject)s")
    )
    return text, {"to": to, "reason": Reason(reason), "subject": subject}


_OWN_ID = re.compile(rb"^message-id:[ \t]*(<[^<>\s]{3,250}>)", re.I | re.M)


def _identity_of(raw: bytes) -> str:
    """The bounce's identity: its own Message-ID when it has one (the same bounce fetched twice,
    or by two scanners, has the same one), else a hash of its bytes with line ends normalised."""
    normal = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    head = normal.split(b"\n\n", 1)[0]
    own = _OWN_ID.search(head)
    basis = b"id:" + own.group(1) if own else b"raw:" + normal.strip()
    return hashlib.sha256(basis).hexdigest()[:40]


class _Matcher:
    """Finds our sent message for each bounced recipient of a batch, in three queries at most:
    by Message-ID, by our token, by recipient and time. Never looks outside the tenant."""

    def __init__(
        self,
        tenant: Tenant,
        channel: Channel | None,
        wanted: list[tuple[bounceparse.Result, str, datetime]],
    ) -> None:
        ids = {r.original_message_id for r, _, _ in wanted if r.original_message_id}
        self.by_id = selectors.messages_by_id(tenant.pk, ids)
        tokens = {
            t
            for r, _, _ in wanted
            if (t := r.original_headers.get("x-msc-message"))
            and (r.original_message_id not in self.by_id)
        }
        self.by_token = selectors.messages_by_token(tenant.pk, tokens)
        rest = [
            (address, at)
            for r, address, at in wanted
            if r.original_message_id not in self.by_id
            and r.original_headers.get("x-msc-message") not in self.by_token
        ]
        self.by_recipient = selectors.messages_to(
            tenant.pk,
            {address for address, _ in rest},
            sent_from=min((at for _, at in rest), default=timezone.now()) - RECIPIENT_WINDOW,
            sent_until=max((at for _, at in rest), default=timezone.now()),
            channel_id=channel.pk if channel is not None else None,
        )

    def find(
        self, result: bounceparse.Result, recipient: str, received_at: datetime
    ) -> tuple[Message | None, str]:
        single = len(result.recipients) == 1
        found = self.by_id.get(result.original_message_id or "")
        if found and (single or found.to_email.lower() == recipient):
            return found, Attribution.MESSAGE_ID
        found = self.by_token.get(result.original_headers.get("x-msc-message", ""))
        if found and (single or found.to_email.lower() == recipient):
            return found, Attribution.HEADER
        for m in self.by_recipient.get(recipient, []):  # newest first
            if m.sent_at and received_at - RECIPIENT_WINDOW <= m.sent_at <= received_at:
                return m, Attribution.RECIPIENT
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
    if event.message_id is None:
        event.save(update_fields=["undone_at", "undone_by"])
        return
    message = Message.objects.select_for_update().get(pk=event.message_id)
    counting = BounceEvent.objects.filter(message_id=event.message_id, undone_at__isnull=True)
    before = counting.order_by("pk").first()
    event.save(update_fields=["undone_at", "undone_by"])
    # Its live-feed entry stays, marked: the sender read it, and now reads that it was undone.
    # Filed under Sent from now on, as the email is: the Bounced filter no longer shows it.
    undone = sentence(UNDONE_IN_FEED, to=event.recipient, subject=message.subject)
    feed.retell(
        event.tenant_id,
        FeedKind.BOUNCED,
        [(_link(event), event.received_at, undone)],
        now_kind=FeedKind.SENT,
    )
    if message.status != MessageStatus.BOUNCED or before is None:
        return
    after = counting.order_by("pk").first()
    if after is not None:
        # Still bounced by another event: the figures follow the one that now counts.
        if after.pk != before.pk:
            rollups.count_bounces(
                [(message, before.hard, before.reason, -1), (message, after.hard, after.reason, 1)]
            )
            if after.hard != before.hard:  # a soft one counts now: no suppression, or one
                sending.messages_bounce_kind(kinds={message.pk: bounce_kind(after)})
        return
    rollups.count_bounces([(message, before.hard, before.reason, -1)])
    sending.message_unbounce(message=message)

"""Complaints, replies and auto-replies: what recipients did with our mail, read by the same
ingestion as bounces (``services.ingest_many``: the inbox scan, the ESP webhooks).

- A **complaint** is what the parser reads as one (an ARF feedback report, a provider's junk
  report) or an ESP's spam report. It is attributed to our message as a bounce is: by the
  returned original's Message-ID, our ``X-MSC-Message`` token, or the recipient and time. Its
  recipient is the report's ``Original-Rcpt-To`` (or ``Removal-Recipient``) when the report
  carries a usable one, else the attributed message's. Its person's campaign ends
  ("complained"), the address is suppressed (reason Complaint, this event as evidence), the
  sender's feed says so.
- A **reply** is mail that is no report of any kind and names one of our messages: its
  ``In-Reply-To`` or ``References``, or our token (``X-MSC-Message``, our Message-ID) quoted
  back. Its person's campaign ends ("replied"). Never a bounce, never counted as one.
- An **auto-reply** (out of office; the parser tells them apart, and so does
  ``Auto-Submitted``) that names one of our messages is recorded and shown, and ends nothing.

Replies and auto-replies that name none of our messages are not recorded: they are the
sender's own mail. Each report counts once (``response_counted_once``), each message once per
kind (``sending.services.messages_responded``, whose kinds are ``ResponseKind``'s values).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parseaddr
from urllib.parse import urlencode

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.translation import gettext_noop

import bounceparse
from accounts.models import Tenant
from analytics import feed, rollups
from analytics.models import FeedKind
from channels.models import Channel
from msc_admin.stored import sentence, stored
from sending import services as sending
from sending.mime import token_of
from sending.models import Message, MessageStatus, SuppressionReason
from sending.services.suppressions import Cause, suppressions_add_for_bounces

from . import selectors
from .models import RAW_CAP, Attribution, BounceSource, ResponseEvent, ResponseKind

# Parser verdicts that are reports, never a person's reply (a read receipt, a delivery notice,
# list mail, a message the parser refused).
_NOT_REPLIES = {"receipt", "success-notice", "list-mail", "refused"}
_ID = re.compile(r"<([^<>\s]{3,250})>")
_QUOTED_TOKEN = re.compile(rb"^[ \t>]*x-msc-message:[ \t]*([A-Za-z0-9_-]{8,64})", re.I | re.M)
_QUOTED_ID = re.compile(rb"<msc\.([0-9a-f]{8,64})@[^<>\s]{1,250}>", re.I)
_ARF_RECIPIENT = re.compile(
    rb"^(?:original-rcpt-to|removal-recipient):[ \t]*(?:rfc822;)?[ \t]*"
    rb"<?([^\s<>;]+@[^\s<>;]+?)>?[ \t]*$",
    re.I | re.M,
)
_FEEDBACK_TYPE = re.compile(rb"^feedback-type:[ \t]*([A-Za-z-]{1,40})", re.I | re.M)
_SEARCHED = 200_000  # bytes of a message searched for quoted tokens and report fields
# Who writes reports, not replies: a delivery notice the parser could not read quotes our
# headers back too, and must never end a campaign as "replied".
_MAIL_SYSTEM = re.compile(
    r"mailer-daemon|postmaster|mail delivery|delivery subsystem|mail system|mail administrator",
    re.I,
)


@dataclass(frozen=True)
class Found:
    """One response read from one incoming item, before attribution."""

    index: int  # of the item in its batch
    kind: str  # ResponseKind
    recipient: str  # lower-cased; "" when the report has no usable one
    ids: tuple[str, ...]  # Message-IDs that may be ours, the likeliest first
    tokens: tuple[str, ...]  # our tokens quoted back
    detail: str
    received_at: datetime
    identity: str
    raw: bytes
    reported_by: str = ""  # an ESP's name, for its spam reports


def classify(
    index: int,
    raw: bytes,
    result: bounceparse.Result,
    *,
    received_at: datetime,
    identity: str,
    own_address: str = "",
    reported_by: str = "",
) -> Found | None:
    """The response this item is, if it is one (a bounce never is)."""
    if result.kind == bounceparse.COMPLAINT:
        recipient = result.recipients[0].address if result.recipients else _arf_recipient(raw)
        kind = _FEEDBACK_TYPE.search(raw[:_SEARCHED])
        detail = kind.group(1).decode().lower()[:40] if kind else ""  # the feedback type
        token = result.original_headers.get("x-msc-message", "")
        return Found(
            index,
            ResponseKind.COMPLAINT,
            recipient.lower()[:320],
            (result.original_message_id,) if result.original_message_id else (),
            (token,) if token else (),
            detail,
            received_at,
            identity,
            raw,
            reported_by,
        )
    if result.kind not in (bounceparse.AUTO_REPLY, bounceparse.NOT_BOUNCE):
        return None
    if result.evidence.rule in _NOT_REPLIES:
        return None
    head = BytesHeaderParser(policy=compat32).parsebytes(raw[:_SEARCHED])
    own_id = str(head.get("message-id", "")).strip()
    sender = parseaddr(str(head.get("from", "")))[1].lower()
    if own_id.startswith("<msc.") or (own_address and sender == own_address.lower()):
        return None  # our own mail (a copy in the sender's inbox), not a reply to it
    content_type = str(head.get("content-type", "")).lower()
    if _MAIL_SYSTEM.search(str(head.get("from", ""))) or "multipart/report" in content_type:
        return None  # a report the parser could not read: never a person's reply
    ids = _ID.findall(str(head.get("in-reply-to", "")))
    ids += list(reversed(_ID.findall(str(head.get("references", "")))))
    body = raw[:_SEARCHED]
    tokens = [m.decode() for m in _QUOTED_TOKEN.findall(body)]
    tokens += [m.decode() for m in _QUOTED_ID.findall(body)]
    if not ids and not tokens:
        return None
    auto = str(head.get("auto-submitted", "no")).strip().lower()
    # RFC 3834: automatic answers go with the null sender; a person's reply never does.
    null_sender = str(head.get("return-path", "")).strip() == "<>"
    automatic = (
        result.kind == bounceparse.AUTO_REPLY or (auto and not auto.startswith("no")) or null_sender
    )
    return Found(
        index,
        ResponseKind.AUTO_REPLY if automatic else ResponseKind.REPLY,
        sender[:320],
        tuple(dict.fromkeys(f"<{i}>" for i in ids)),
        tuple(dict.fromkeys(tokens)),
        _subject(str(head.get("subject", ""))),
        received_at,
        identity,
        raw,
    )


# A complaint's feedback type (RFC 5965 and RFC 6591) in words; another type reads as itself.
REPORTS = {
    "": gettext_noop("spam report"),
    "abuse": gettext_noop("abuse report"),
    "fraud": gettext_noop("fraud report"),
    "virus": gettext_noop("virus report"),
    "auth-failure": gettext_noop("authentication failure report"),
    "not-spam": gettext_noop("not-spam report"),
    "other": gettext_noop("other report"),
}


def response_detail(found: Found) -> str:
    """What ``ResponseEvent.detail`` keeps: a reply's subject as it is; a complaint's feedback
    type and the ESP that reported it as a sentence (``msc_admin.stored``), read in the
    reader's language."""
    if found.kind != ResponseKind.COMPLAINT:
        return found.detail[:300]
    code = found.detail
    report = (
        sentence(REPORTS[code])
        if code in REPORTS
        else sentence(gettext_noop("%(type)s report"), type=code)
    )
    if found.reported_by:
        report = sentence(
            gettext_noop("%(report)s, reported by %(esp)s"), report=report, esp=found.reported_by
        )
    return stored(report, 300)


def _arf_recipient(raw: bytes) -> str:
    """The complaining recipient as the report names it, when it is a usable address (reports
    often redact it: "redacted@…", "xxxxx@…")."""
    for found in _ARF_RECIPIENT.findall(raw[:_SEARCHED]):
        address = found.decode("ascii", "replace").strip().lower()
        local = address.partition("@")[0]
        if "redacted" in local or not local.strip("x*#._-") or "@" not in address[1:]:
            continue
        return address
    return ""


def _subject(value: str) -> str:
    try:
        text = str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        text = value
    return " ".join(text.split())[:300]


class _Matcher:
    """Our message for each response, in three queries at most: by Message-ID, by token, and
    (complaints only) by recipient and time. Never outside the tenant."""

    def __init__(
        self, tenant: Tenant, channel: Channel | None, found: list[Found], window: timedelta
    ) -> None:
        self.window = window
        ids = {i for f in found for i in f.ids}
        self.by_id = selectors.messages_by_id(tenant.pk, ids)
        tokens = {t for f in found for t in f.tokens} | {
            token_of(i) for f in found for i in f.ids if i.startswith("<msc.")
        }
        self.by_token = selectors.messages_by_token(tenant.pk, tokens)
        rest = [
            f
            for f in found
            if f.kind == ResponseKind.COMPLAINT and f.recipient and self._direct(f)[0] is None
        ]
        self.by_recipient: dict[str, list[Message]] = {}
        if rest:
            self.by_recipient = selectors.messages_to(
                tenant.pk,
                {f.recipient for f in rest},
                sent_from=min(f.received_at for f in rest) - window,
                sent_until=max(f.received_at for f in rest),
                channel_id=channel.pk if channel is not None else None,
            )

    def _direct(self, found: Found) -> tuple[Message | None, str]:
        for i in found.ids:
            if i in self.by_id:
                return self.by_id[i], Attribution.MESSAGE_ID
        for i in found.ids:
            if i.startswith("<msc.") and token_of(i) in self.by_token:
                return self.by_token[token_of(i)], Attribution.MESSAGE_ID
        for token in found.tokens:
            if token in self.by_token:
                return self.by_token[token], Attribution.HEADER
        return None, Attribution.NONE

    def find(self, found: Found) -> tuple[Message | None, str]:
        message, how = self._direct(found)
        if message is not None or found.kind != ResponseKind.COMPLAINT:
            return message, how
        for m in self.by_recipient.get(found.recipient, []):  # newest first
            if m.sent_at and found.received_at - self.window <= m.sent_at <= found.received_at:
                return m, Attribution.RECIPIENT
        return None, Attribution.NONE


def record(
    *,
    tenant: Tenant,
    found: Sequence[Found],
    source: str,
    channel: Channel | None,
    window: timedelta,
) -> list[ResponseEvent]:
    """Record each response once and apply its effects, in one transaction; returns those
    recorded now. Replies and auto-replies to none of our messages are left out."""
    if not found:
        return []
    matcher = _Matcher(tenant, channel, list(found), window)
    events: dict[str, ResponseEvent] = {}
    for f in found:
        message, how = matcher.find(f)
        if message is None and f.kind != ResponseKind.COMPLAINT:
            continue
        if how == Attribution.HEADER and source == BounceSource.WEBHOOK:
            how = Attribution.PROVIDER
        received_at = f.received_at
        if message is not None and message.sent_at and received_at < message.sent_at:
            received_at = message.sent_at  # a response never comes before its message
        recipient = f.recipient or (message.to_email.lower() if message else "")
        key = f"{f.identity}:{f.kind}"[:128]
        events.setdefault(
            key,
            ResponseEvent(
                tenant=tenant,
                channel_id=channel.pk if channel else (message.channel_id if message else None),
                message=message,
                source=source,
                kind=f.kind,
                dedupe_key=key,
                recipient=recipient[:320],
                detail=response_detail(f),
                original_message_id=(message.message_id if message else next(iter(f.ids), ""))[
                    :255
                ],
                attributed_by=how,
                raw=f.raw[:RAW_CAP],
                raw_truncated=len(f.raw) > RAW_CAP,
                received_at=received_at,
            ),
        )
    if not events:
        return []
    known = set(
        ResponseEvent.objects.filter(tenant=tenant, dedupe_key__in=events).values_list(
            "dedupe_key", flat=True
        )
    )
    reporters = {f"{f.identity}:{f.kind}"[:128]: f.reported_by for f in found}
    recorded: list[ResponseEvent] = []
    with transaction.atomic():
        for key in sorted(set(events) - known):  # one order: concurrent scanners never deadlock
            event = events[key]
            try:
                with transaction.atomic():
                    event.save(force_insert=True)
            except IntegrityError:
                continue  # recorded by another scanner meanwhile: counted there
            recorded.append(event)
        _apply(tenant, recorded, reporters)
    return recorded


def _apply(tenant: Tenant, events: list[ResponseEvent], reporters: dict[str, str]) -> None:
    entries: list[tuple[int, str, str, str, datetime]] = []
    causes: list[Cause] = []
    counts = (
        (ResponseKind.COMPLAINT, rollups.COMPLAINED),
        (ResponseKind.REPLY, rollups.REPLIED),
        (ResponseKind.AUTO_REPLY, ""),  # shown, never counted
    )
    for kind, counted in counts:
        mine = [e for e in events if e.kind == kind]
        first: dict[int, ResponseEvent] = {}
        for event in mine:
            if event.message_id is not None:
                first.setdefault(event.message_id, event)
        marked = sending.messages_responded(
            kind=kind, at={pk: event.received_at for pk, event in first.items()}
        )
        messages = [first[pk].message for pk in marked]
        if counted:
            rollups.count_responses((m, counted) for m in messages if m is not None)
        for pk in marked:
            event = first[pk]
            message = event.message
            assert message is not None
            text, feed_kind = feed_text(event, message)
            entries.append((message.sender_id, feed_kind, text, _link(message), event.received_at))
        if kind == ResponseKind.COMPLAINT:
            for event in mine:
                if not event.recipient:
                    continue
                message = event.message
                detail = sending.complaint_detail(
                    when=event.received_at,
                    subject=message.subject if message else "",
                    reported_by=reporters.get(event.dedupe_key, ""),
                )
                causes.append(
                    Cause(
                        tenant.pk,
                        event.recipient,
                        SuppressionReason.COMPLAINT,
                        detail,
                        event.message_id,
                        complaint_event_id=event.pk,
                        at=event.received_at,
                    )
                )
    suppressions_add_for_bounces(causes)
    feed.notify_at(tenant.pk, entries)


def feed_text(event: ResponseEvent, message: Message) -> tuple[str, str]:
    """The sender's feed entry about a response (a sentence, ``msc_admin.stored``), and its
    kind."""
    who = event.recipient or message.to_email
    campaign = message.enrollment_id is not None
    if event.kind == ResponseKind.COMPLAINT:
        text = (
            gettext_noop(
                "%(who)s marked your email as spam: %(subject)s. Their campaign has ended and "
                "the address is suppressed."
            )
            if campaign
            else gettext_noop(
                "%(who)s marked your email as spam: %(subject)s. The address is suppressed."
            )
        )
        return sentence(text, who=who, subject=message.subject), FeedKind.COMPLAINED
    if event.kind == ResponseKind.REPLY:
        text = (
            gettext_noop("%(who)s replied to %(subject)s. Their campaign has ended.")
            if campaign
            else gettext_noop("%(who)s replied to %(subject)s.")
        )
        return sentence(text, who=who, subject=message.subject), FeedKind.REPLIED
    text = (
        gettext_noop("%(who)s sent an auto-reply to %(subject)s. Their campaign carries on.")
        if campaign
        else gettext_noop("%(who)s sent an auto-reply to %(subject)s.")
    )
    return sentence(text, who=who, subject=message.subject), FeedKind.AUTO_REPLIED


def _link(message: Message) -> str:
    folder = "bounced" if message.status == MessageStatus.BOUNCED else "sent"
    url = reverse("sending:outbox_folder", args=[folder])
    return f"{url}?{urlencode({'q': message.to_email})}"

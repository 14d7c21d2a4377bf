"""Re-classification: read stored raw bounces again with the current parser and apply what changed.

One service re-reads a batch (``reclassify``): ``manage.py reparse_bounces`` hands it every
stored bounce in batches, an admin's "Re-check with the current parser" hands it one. Each raw
message is parsed first, outside any transaction (the raw bytes never change); then, in one
transaction per batch, the events are locked and re-read, and every change is applied together
so that nothing disagrees afterwards:

- the event: reason, hard or soft, status, SMTP code, diagnostic, evidence and parser version
  (an unchanged verdict is stamped with the version and its evidence too);
- a bounce the parser no longer reads (not a bounce at all, or not about this recipient) stops
  counting as "not a bounce" does (``services.undo``): its message counts as sent again and a
  campaign it ended carries on, but it is recorded as the parser's doing, not a person's
  (``undone_by_parser``), and a later parser that reads it as a bounce again counts it again.
  A person's "not a bounce" is never overturned;
- the message's bounce (which event counts for it: the first not undone) and its Outbox text,
  the roll-ups (one sorted bump per table for the whole batch: the reason moves, hard and soft
  move), and the sender's live-feed entry about it;
- a ``BounceRecheck`` row for each changed verdict: what it was, what it is, who asked.

A raw message kept only in part (``raw_truncated``) or not at all is left as it was when it no
longer yields the recipient's bounce: a cut message is not evidence that it is not a bounce.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, pgettext

import bounceparse
from accounts.models import Tenant, User
from analytics import feed, rollups
from analytics.models import FeedKind
from sending import services as sending
from sending.models import Message, MessageStatus

from . import services, webhooks
from .models import BounceEvent, BounceRecheck, BounceSource

BATCH = 200
NOT_NAMED = "not_named"  # a bounce, but no longer about this recipient

# What a re-read message is instead of a bounce, in words.
KINDS = {
    bounceparse.NOT_BOUNCE: gettext_lazy("not a bounce"),
    bounceparse.AUTO_REPLY: gettext_lazy("an auto-reply"),
    bounceparse.COMPLAINT: gettext_lazy("a spam complaint"),
    NOT_NAMED: gettext_lazy("a bounce about other recipients"),
}


@dataclass(frozen=True)
class Verdict:
    """What the current parser reads in a stored bounce about its recipient."""

    bounce: bool
    kind: str = bounceparse.BOUNCE
    reason: str = ""
    hard: bool = False
    status: str = ""
    smtp_code: str = ""
    diagnostic: str = ""
    evidence: dict[str, str] = field(default_factory=dict)
    version: str = bounceparse.PARSER_VERSION


@dataclass(frozen=True)
class Change:
    """One event re-read: its verdict before and now. ``kept`` says why the stored verdict
    stays (its raw message is missing or cut and no longer yields the bounce)."""

    event_id: int
    old_bounce: bool  # the parser's previous verdict was a bounce (whatever a person decided)
    old_reason: str
    old_hard: bool
    new: Verdict | None
    kept: str = ""

    @property
    def changed(self) -> bool:
        new = self.new
        if new is None:
            return False
        if new.bounce != self.old_bounce:
            return True
        return new.bounce and (new.reason, new.hard) != (self.old_reason, self.old_hard)

    @property
    def old_class(self) -> str:
        return ("hard" if self.old_hard else "soft") if self.old_bounce else "not a bounce"

    @property
    def new_class(self) -> str:
        if self.new is None or not self.new.bounce:
            return "not a bounce" if self.new is not None else self.old_class
        return "hard" if self.new.hard else "soft"

    @property
    def old_label(self) -> str:
        return (self.old_reason or "unknown") if self.old_bounce else "not a bounce"

    @property
    def new_label(self) -> str:
        if self.new is None:
            return self.old_label
        return (self.new.reason or "unknown") if self.new.bounce else "not a bounce"


@dataclass
class Tally:
    """What a run read and changed: the table ``reparse_bounces`` prints."""

    read: int = 0
    changed: int = 0
    same: int = 0
    kept: int = 0
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    classes: Counter[tuple[str, str]] = field(default_factory=Counter)
    last_id: int = 0

    def add(self, changes: Iterable[Change]) -> None:
        for change in changes:
            self.read += 1
            self.last_id = max(self.last_id, change.event_id)
            if change.kept:
                self.kept += 1
            elif change.changed:
                self.changed += 1
                self.reasons[(change.old_label, change.new_label)] += 1
                if change.old_class != change.new_class:
                    self.classes[(change.old_class, change.new_class)] += 1
            else:
                self.same += 1


def pending(
    *,
    tenants: list[Tenant] | None = None,
    since: datetime | None = None,
    after_id: int = 0,
    every: bool = False,
) -> QuerySet[BounceEvent]:
    """The stored bounces a run re-reads, by ascending id: those not yet read by the current
    parser (``every``: all of them), of these tenants, received since a time, after an id."""
    found = BounceEvent.objects.filter(pk__gt=after_id).order_by("pk")
    if not every:
        found = found.exclude(parser_version=bounceparse.PARSER_VERSION)
    if tenants is not None:
        found = found.filter(tenant__in=tenants)
    if since is not None:
        found = found.filter(received_at__gte=since)
    return found


def read(event: BounceEvent) -> Verdict | None:
    """The current parser's verdict on a stored bounce's recipient; None when its raw message
    cannot be read again (none kept, or an ESP event that no longer reads)."""
    raw = bytes(event.raw)
    if not raw:
        return None
    if event.source == BounceSource.WEBHOOK:
        result = webhooks.reparse(event.dedupe_key, raw)
        if result is None:
            return None
    else:
        result = bounceparse.parse(raw)
    if result.kind == bounceparse.BOUNCE:
        for recipient in result.recipients:
            if recipient.address[:320] == event.recipient.lower():
                return Verdict(
                    bounce=True,
                    reason=recipient.reason[:24],
                    hard=recipient.hard,
                    status=recipient.status[:12],
                    smtp_code=recipient.smtp_code[:3],
                    diagnostic=recipient.diagnostic[:500],
                    evidence=recipient.evidence.as_dict(),
                    version=result.parser_version,
                )
    kind = NOT_NAMED if result.kind == bounceparse.BOUNCE else result.kind
    return Verdict(
        bounce=False, kind=kind, evidence=result.evidence.as_dict(), version=result.parser_version
    )


def _change(event: BounceEvent, verdict: Verdict | None) -> Change:
    old_bounce = event.kind == bounceparse.BOUNCE and not event.undone_by_parser
    if verdict is None:
        return Change(event.pk, old_bounce, event.reason, event.hard, None, kept="no raw message")
    if event.raw_truncated and old_bounce and not verdict.bounce:
        return Change(event.pk, old_bounce, event.reason, event.hard, None, kept="raw cut short")
    return Change(event.pk, old_bounce, event.reason, event.hard, verdict)


def reclassify(*, event_ids: list[int], apply: bool, by: User | None = None) -> list[Change]:
    """Re-read these stored bounces with the current parser. With ``apply``, write what changed
    in one transaction; without, only say what would change."""
    events = list(BounceEvent.objects.filter(pk__in=event_ids).order_by("pk"))
    verdicts = {event.pk: read(event) for event in events}
    if not apply:
        return [_change(event, verdicts[event.pk]) for event in events]
    return _apply(verdicts, by)


_FIELDS = [
    "kind",
    "reason",
    "hard",
    "status",
    "smtp_code",
    "diagnostic",
    "evidence",
    "parser_version",
    "undone_at",
    "undone_by",
    "undone_by_parser",
]


@transaction.atomic
def _apply(verdicts: dict[int, Verdict | None], by: User | None) -> list[Change]:
    # Events, then their messages, each in id order: as "not a bounce" locks them.
    locked = list(
        BounceEvent.objects.select_for_update().filter(pk__in=verdicts).order_by("pk").defer("raw")
    )
    now = timezone.now()
    changes = []
    touched: set[int] = set()  # messages whose bounce may read differently now
    retell: list[BounceEvent] = []  # counting events whose feed entry says another reason
    rechecks = []
    written = []
    for event in locked:
        change = _change(event, verdicts[event.pk])
        changes.append(change)
        new = change.new
        if new is None:
            continue
        if change.changed:
            rechecks.append(_recheck(event, change, new, now, by))
        if event.message_id is not None and (
            change.changed or (new.bounce and new.diagnostic != event.diagnostic)
        ):
            touched.add(event.message_id)
        event.parser_version, event.evidence = new.version, new.evidence
        if new.bounce:
            if change.changed and event.undone_at is None:
                retell.append(event)
            event.kind = bounceparse.BOUNCE
            event.reason, event.hard, event.status = new.reason, new.hard, new.status
            event.smtp_code, event.diagnostic = new.smtp_code, new.diagnostic
            if event.undone_by_parser:  # a bounce again: it counts again
                event.undone_at, event.undone_by_parser = None, False
        else:
            event.kind = new.kind
            if event.undone_at is None:
                event.undone_at, event.undone_by, event.undone_by_parser = now, None, True
        written.append(event)
    before = _counting(touched)
    BounceEvent.objects.bulk_update(written, _FIELDS)
    BounceRecheck.objects.bulk_create(rechecks)
    _follow(before, _counting(touched), retell)
    return changes


def _recheck(
    event: BounceEvent, change: Change, new: Verdict, now: datetime, by: User | None
) -> BounceRecheck:
    return BounceRecheck(
        tenant_id=event.tenant_id,
        event=event,
        at=now,
        by=by,
        old_version=event.parser_version,
        new_version=new.version,
        old_reason=change.old_reason,
        old_hard=change.old_hard,
        old_bounce=change.old_bounce,
        new_reason=new.reason if new.bounce else "",
        new_hard=new.hard if new.bounce else False,
        new_bounce=new.bounce,
        new_kind=new.kind,
    )


@dataclass(frozen=True)
class _Counts:
    """An event counting for its message (not undone), as the roll-ups and Outbox read it."""

    pk: int
    hard: bool
    reason: str
    diagnostic: str
    code: str
    received_at: datetime

    def kind(self) -> sending.BounceKind:
        return sending.BounceKind(
            hard=self.hard, event_id=self.pk, code=self.code, at=self.received_at
        )


def _counting(message_ids: set[int]) -> dict[int, _Counts]:
    """For each message, the bounce its figures follow: the first event not undone
    (``bounces.selectors.outcomes``). Messages with none are left out."""
    if not message_ids:
        return {}
    rows = (
        BounceEvent.objects.filter(message_id__in=message_ids, undone_at__isnull=True)
        .order_by("-pk")
        .values_list(
            "message_id", "pk", "hard", "reason", "diagnostic", "smtp_code", "status", "received_at"
        )
    )
    # Newest first, so that the lowest id of each message is the one kept.
    return {
        row[0]: _Counts(row[1], row[2], row[3], row[4], f"{row[5]} {row[6]}".strip(), row[7])
        for row in rows
    }


_SENT_FIELDS = (
    "pk",
    "tenant_id",
    "sender_id",
    "template_id",
    "campaign_step_id",
    "channel_id",
    "to_domain",
    "sent_at",
    "status",
    "status_detail",
    "enrollment_id",
    "subject",
)


def _follow(
    before: dict[int, _Counts], after: dict[int, _Counts], retell: list[BounceEvent]
) -> None:
    """Bring each message, its campaign, the roll-ups and the feed in line with the bounce that
    counts for it now."""
    wanted = set(before) | set(after) | {e.message_id for e in retell if e.message_id}
    if not wanted:
        return
    found = Message.objects.select_for_update().filter(pk__in=wanted).order_by("pk")
    messages = {m.pk: m for m in found.only(*_SENT_FIELDS)}
    moves: list[tuple[Message, bool, str, int]] = []
    details: dict[int, str] = {}
    again: dict[int, str] = {}
    kinds: dict[int, sending.BounceKind] = {}  # bounced still, but now hard or soft instead
    for pk, message in messages.items():
        was, now = before.get(pk), after.get(pk)
        if message.status == MessageStatus.BOUNCED:
            # The figures follow the first counting event: out with the old, in with the new
            # (the two cancel out in the sums when neither reason nor class moved).
            if was is not None:
                moves.append((message, was.hard, was.reason, -1))
            if now is not None:
                moves.append((message, now.hard, now.reason, 1))
                detail = services.bounce_detail(now.hard, now.reason, now.diagnostic)
                if detail != message.status_detail:
                    details[pk] = detail
                if was is None or was.hard != now.hard:
                    kinds[pk] = now.kind()
            elif was is not None:
                sending.message_unbounce(message=message)
        elif message.status == MessageStatus.SENT and was is None and now is not None:
            again[pk] = services.bounce_detail(now.hard, now.reason, now.diagnostic)
    for pk in sending.messages_bounced(again, kinds={pk: after[pk].kind() for pk in again}):
        moves.append((messages[pk], after[pk].hard, after[pk].reason, 1))
    sending.messages_bounce_detail(details=details)
    sending.messages_bounce_kind(kinds=kinds)
    rollups.count_bounces(moves)
    entries = [
        (f"/bounces/{e.pk}/", e.received_at, services.feed_text(e, messages[e.message_id]))
        for e in retell
        if e.message_id in messages
    ]
    if entries:
        feed.retell(retell[0].tenant_id, FeedKind.BOUNCED, entries)


@transaction.atomic
def bounce_recheck(*, event: BounceEvent, by: User) -> Change:
    """An admin's "Re-check with the current parser" on one bounce: read again and applied
    as ``reparse_bounces`` does, whichever parser read it before."""
    (change,) = reclassify(event_ids=[event.pk], apply=True, by=by)
    return change


def summary(change: Change) -> str:
    """What a re-check of one bounce found, for the person who asked (in the active language)."""
    version = (
        gettext("parser v%(version)s") % {"version": change.new.version}
        if change.new
        else gettext("the current parser")
    )
    if change.kept:
        if change.kept == "no raw message":
            return gettext(
                "This bounce could not be read again (no raw message was kept), so its verdict "
                "stays as it was."
            )
        return gettext(
            "This bounce could not be read again (it was cut short), so its verdict stays as it "
            "was."
        )
    new = change.new
    assert new is not None
    values = {"version": version, "kind": _kind(new.kind)}
    if not change.changed:
        if not new.bounce:
            return gettext("Re-checked with %(version)s: still %(kind)s.") % values
        values["reason"] = _words(new.reason)
        if new.hard:
            same = gettext(
                "Re-checked with %(version)s: the verdict is the same (“%(reason)s”, hard)."
            )
        else:
            same = gettext(
                "Re-checked with %(version)s: the verdict is the same (“%(reason)s”, soft)."
            )
        return same % values
    values["was"] = (
        _verdict(change.old_reason, change.old_hard)
        if change.old_bounce
        else str(KINDS[bounceparse.NOT_BOUNCE])
    )
    if not new.bounce:
        return (
            gettext(
                "Re-checked with %(version)s: this is %(kind)s, not a bounce for this recipient "
                "(it was %(was)s). It no longer counts: its message counts as sent again and a "
                "campaign it ended carries on."
            )
            % values
        )
    values["now"] = _verdict(new.reason, new.hard)
    if not change.old_bounce:
        return (
            gettext(
                "Re-checked with %(version)s: this is a bounce again, %(now)s, and counts again."
            )
            % values
        )
    return (
        gettext(
            "Re-checked with %(version)s: now %(now)s, was %(was)s. The message, the analytics "
            "and the live feed say so too."
        )
        % values
    )


def _kind(kind: str) -> str:
    return str(KINDS.get(kind, KINDS[bounceparse.NOT_BOUNCE]))


def _verdict(reason: str, hard: bool) -> str:
    """“Mailbox full” (soft)"""
    values = {"reason": _words(reason)}
    if hard:
        return pgettext("a bounce's verdict", "“%(reason)s” (hard)") % values
    return pgettext("a bounce's verdict", "“%(reason)s” (soft)") % values


def _words(reason: str) -> str:
    from analytics.templatetags.bounce_reasons import words

    return words(reason)

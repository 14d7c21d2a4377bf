"""The suppression list: addresses the team's mail never goes to again.

An address is added when it hard-bounces (in the transaction that records the bounce), when its
recipient complains (likewise, with the complaint as evidence), when it soft-bounces too often
(``TeamSendingSettings.soft_bounce_limit`` within ``soft_bounce_days``), or by an admin (one by
one or from a CSV file). One row per address: the first cause is kept and a later one changes
nothing (``INSERT … ON CONFLICT DO NOTHING``), so the evidence shown is the
first bounce. "Not a bounce", a spike's undo and a re-classification that takes a hard bounce
back lift the entry that bounce made, and only that one (``suppressions_lift_for_messages``);
if another hard bounce of the address still stands, the entry stays with that one as evidence.

Every send path asks ``suppression_for`` (one look-up on the ``(tenant, address)`` unique index)
before anything leaves: ``message_compose`` stores the message as suppressed instead of queuing
it, and the pipeline checks again after its claim, so a retry, a held message released or a
campaign step created before the address was suppressed is stopped too.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, models, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from accounts.models import Tenant, User
from channels.services import audit
from msc_admin import bulk
from msc_admin.stored import Day, Sentence, again, sentence, stored, stored_sentence
from sending.models import (
    BOUNCE_REASONS,
    CAMPAIGN_ENDED_SUPPRESSED,
    CampaignStatus,
    Contact,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    Suppression,
    SuppressionReason,
)

IMPORT_MAX_ROWS = 50_000


def normal(address: str) -> str:
    return address.strip().lower()


def suppression_for(tenant_id: int, email: str) -> Suppression | None:
    """The entry that stops mail to this address, if any: one indexed look-up."""
    # Every message composed asks: a plain statement (a third of the ORM's cost for it).
    sql = (
        f"SELECT {bulk.columns(Suppression, 's')} FROM {Suppression._meta.db_table} s "  # noqa: S608 - names from the model
        "WHERE s.tenant_id = %s AND s.address = %s"
    )
    with bulk.statement_cursor() as cursor:
        cursor.execute(sql, [tenant_id, normal(email)])
        row = cursor.fetchone()
    found = bulk.instance(Suppression, row) if row else None
    assert found is None or isinstance(found, Suppression)
    return found


def suppressions_for(tenant_id: int, emails: Iterable[str]) -> dict[str, Suppression]:
    """The entries of these addresses (lower-cased keys): one look-up for a batch."""
    wanted = {normal(e) for e in emails}
    if not wanted:
        return {}
    found = Suppression.objects.filter(tenant_id=tenant_id, address__in=wanted)
    return {s.address: s for s in found}


def suppressed_contacts(tenant_id: int) -> dict[str, str]:
    """The tenant's contacts on the list: {lower-cased address: why}, in one query that
    returns only those (the enrolment checklist marks them)."""
    contacts = Contact.objects.filter(tenant_id=tenant_id).annotate(address=Lower("email"))
    found = Suppression.objects.filter(
        tenant_id=tenant_id, address__in=contacts.values("address")
    ).only("address", "reason", "detail")
    return {entry.address: entry.why for entry in found}


def suppressed_text(address: str, entry: Suppression) -> str:
    """What a page or a message's status says about a suppressed address."""
    text = gettext_noop("Not sent: %(address)s is on your team's suppression list (%(why)s).")
    why = again(entry.detail) if entry.detail else SuppressionReason(entry.reason).label
    return sentence(text, address=address, why=why)


def bounce_detail(*, hard: bool, code: str, when: datetime, subject: str) -> Sentence:
    """ "Hard bounce 550 5.1.1 on Nov 12, 2026, from “Intro”": the entry's words, stored as a
    sentence (``msc_admin.stored``) and read in the reader's language, the day in their format."""
    text, values = _bounce_words(hard=hard, code=code, when=when, subject=subject)
    return sentence(text, **values)


def bounce_detail_stored(*, hard: bool, code: str, when: datetime, subject: str) -> str:
    """``stored(bounce_detail(…))``, never rendered: a batch of bounces only stores it."""
    text, values = _bounce_words(hard=hard, code=code, when=when, subject=subject)
    return stored_sentence(text, **values)


def _bounce_words(
    *, hard: bool, code: str, when: datetime, subject: str
) -> tuple[str, dict[str, Any]]:
    if hard:
        text = (
            gettext_noop("Hard bounce %(code)s on %(day)s, from “%(subject)s”")
            if code
            else gettext_noop("Hard bounce on %(day)s, from “%(subject)s”")
        )
    else:
        text = (
            gettext_noop("Soft bounces repeated, the last %(code)s on %(day)s, from “%(subject)s”")
            if code
            else gettext_noop("Soft bounces repeated, the last on %(day)s, from “%(subject)s”")
        )
    values: dict[str, Any] = {"code": code} if code else {}
    return text, {"day": Day(when), "subject": subject, **values}


@dataclass(frozen=True)
class Cause:
    """One bounce (or complaint) that suppresses its recipient (written by ``messages_bounced``
    and by the ingestion of complaints)."""

    tenant_id: int
    address: str
    reason: str
    detail: str
    message_id: int | None = None
    bounce_event_id: int | None = None
    complaint_event_id: int | None = None
    at: datetime | None = None  # when it bounced


@dataclass(frozen=True)
class Evidence:
    """A bounce that stands for a bounced message: its event, code and time."""

    event_id: int
    code: str
    at: datetime


# The hard bounce that stands (is counted) for a bounced message, if any: the bounces app,
# above this one, knows its events and registers this at start-up (``bounces.apps``).
def _no_evidence(message_id: int) -> Evidence | None:
    return None


standing_hard_bounce: Callable[[int], Evidence | None] = _no_evidence


def suppressions_add_for_bounces(causes: list[Cause]) -> None:
    """Suppress the recipients of these bounces in one ``INSERT … ON CONFLICT DO NOTHING``: an
    address suppressed already keeps its first cause. Runs in the transaction that records the
    bounces."""
    if not causes:
        return
    now = timezone.now()
    fields = (
        "tenant_id",
        "address",
        "reason",
        "detail",
        "message_id",
        "bounce_event_id",
        "complaint_event_id",
        "bounced_at",
    )
    rows = [
        (
            c.tenant_id,
            normal(c.address)[:320],
            c.reason,
            stored(c.detail),
            c.message_id,
            c.bounce_event_id,
            c.complaint_event_id,
            c.at,
            now,
        )
        for c in sorted(causes, key=lambda c: (c.tenant_id, normal(c.address)))
    ]
    if connection.vendor == "postgresql":
        bulk.insert(Suppression, (*fields, "created_at"), rows, conflict="(tenant_id, address)")
        return
    Suppression.objects.bulk_create(
        [Suppression(**dict(zip((*fields, "created_at"), row, strict=True))) for row in rows],
        ignore_conflicts=True,
    )


@transaction.atomic
def suppressions_lift_for_messages(message_ids: Iterable[int]) -> int:
    """A bounce stopped counting ("not a bounce", a spike undone, re-classified as soft or as no
    bounce): lift the entries the bounces of these messages made, and only those. An entry whose
    address has another hard bounce still standing stays, with that bounce as its evidence.
    Returns how many were lifted."""
    ids = list(message_ids)
    if not ids:
        return 0
    # The entries of these messages' addresses are locked, whichever bounce they hold: two
    # bounces of one address taken back at once take turns, and the second sees the entry the
    # first relinked (to its own bounce, maybe) instead of missing it.
    addresses = (
        Message.objects.filter(pk__in=ids)
        .annotate(address=Lower("to_email"))
        .values_list("tenant_id", "address")
    )
    by_address = models.Q()
    for tenant_id, address in sorted(set(addresses)):
        by_address |= models.Q(tenant_id=tenant_id, address=address)
    found = (
        Suppression.objects.filter(by_address).select_for_update().order_by("tenant_id", "address")
        if by_address
        else Suppression.objects.none()
    )
    lifted = []
    for entry in found:
        if entry.message_id not in ids or entry.reason not in BOUNCE_REASONS:
            continue
        if _relinked(entry, ids):
            continue
        entry.delete()
        lifted.append((entry.tenant_id, entry.address))
    for tenant_id, address in lifted:
        _campaigns_resume(tenant_id, [address])
    return len(lifted)


def _relinked(entry: Suppression, lifted: list[int]) -> bool:
    """Link the entry to another hard bounce of its address that still stands (the newest),
    saying so in its words; False if there is none."""
    others = (
        Message.objects.annotate(address=Lower("to_email"))
        .filter(
            tenant_id=entry.tenant_id,
            address=entry.address,
            status=MessageStatus.BOUNCED,
            bounced_soft=False,
        )
        .exclude(pk__in=lifted)
        .order_by("-bounced_at", "-pk")
    )
    for message in others.only("pk", "subject", "bounced_at")[:20]:
        evidence = standing_hard_bounce(message.pk)
        if evidence is None:
            continue
        entry.reason = SuppressionReason.HARD_BOUNCE
        entry.message_id = message.pk
        entry.bounce_event_id = evidence.event_id
        entry.bounced_at = evidence.at
        entry.detail = stored(
            bounce_detail(hard=True, code=evidence.code, when=evidence.at, subject=message.subject)
        )
        entry.save(update_fields=["reason", "message", "bounce_event_id", "bounced_at", "detail"])
        return True
    return False


def _campaigns_resume(tenant_id: int, addresses: list[str]) -> None:
    """These addresses are off the list: the campaigns their suppression ended go on where they
    stopped (the suppressed step and the steps it stopped are queued or scheduled again), unless
    the campaign itself has ended since."""
    ended = Enrollment.objects.filter(
        tenant_id=tenant_id,
        status=EnrollmentStatus.ENDED,
        ended_reason=CAMPAIGN_ENDED_SUPPRESSED,
        contact__email__in=addresses,
    ).exclude(campaign__status=CampaignStatus.ENDED)
    resumed = list(ended.values_list("pk", flat=True))
    if not resumed:
        return
    now = timezone.now()
    Enrollment.objects.filter(pk__in=resumed).update(
        status=EnrollmentStatus.ACTIVE, ended_reason="", ended_at=None
    )
    stopped = Message.objects.filter(enrollment_id__in=resumed).filter(
        models.Q(status=MessageStatus.SUPPRESSED)
        | models.Q(status=MessageStatus.CANCELLED, status_detail=CAMPAIGN_ENDED_SUPPRESSED)
    )
    stopped.filter(scheduled_at__gt=now).update(status=MessageStatus.SCHEDULED, status_detail="")
    stopped.update(
        status=MessageStatus.QUEUED, status_detail="", next_attempt_at=now, dispatched_at=None
    )


@transaction.atomic
def suppression_add(*, tenant: Tenant, by: User, address: str, note: str = "") -> Suppression:
    """An admin suppresses an address by hand (audited). Raises ``ValidationError``."""
    address = normal(address)
    try:
        validate_email(address)
    except ValidationError:
        text = gettext("“%(address)s” is not an email address.")
        raise ValidationError(text % {"address": address}) from None
    entry, created = Suppression.objects.get_or_create(
        tenant=tenant,
        address=address,
        defaults={"reason": SuppressionReason.MANUAL, "detail": note[:500], "created_by": by},
    )
    if not created:
        text = gettext("%(address)s is already suppressed (%(why)s).")
        raise ValidationError(text % {"address": address, "why": entry.why})
    audit(
        tenant=tenant,
        actor=by,
        subject=sentence(gettext_noop("suppression of %(address)s"), address=address),
        action="suppressed",
    )
    return entry


@transaction.atomic
def suppressions_remove(*, tenant: Tenant, by: User, ids: Iterable[int]) -> list[str]:
    """An admin removes entries: mail to those addresses goes out again. Each removal is
    audited with its reason. Returns the addresses removed."""
    found = list(
        Suppression.objects.for_tenant(tenant)
        .filter(pk__in=list(ids))
        .select_for_update()
        .order_by("address")
    )
    for entry in found:
        audit(
            tenant=tenant,
            actor=by,
            subject=sentence(gettext_noop("suppression of %(address)s"), address=entry.address),
            action="suppression removed",
            changes={"reason": entry.get_reason_display(), "detail": entry.detail},
        )
    Suppression.objects.filter(pk__in=[e.pk for e in found]).delete()
    _campaigns_resume(tenant.pk, [e.address for e in found])
    return [e.address for e in found]


@dataclass
class Imported:
    added: int = 0
    existing: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    no_address: list[int] = field(default_factory=list)  # lines with cells but no address


@transaction.atomic
def suppressions_import(*, tenant: Tenant, by: User, text: str) -> Imported:
    """Add the addresses of a CSV file (a column ``email``, or the first column; an optional
    ``note``) as entries added by an admin. A bad row is named and skipped; nothing else is
    lost. The import is audited once."""
    done = Imported()
    reader = csv.reader(io.StringIO(text))
    rows: list[list[str]] = []
    lines: list[int] = []  # where each row starts in the file (1-based): a cell may hold a newline
    last = 0
    for row in itertools.islice(reader, IMPORT_MAX_ROWS + 1):
        rows.append(row)
        lines.append(last + 1)
        last = reader.line_num
    if not rows:
        return done
    header = [h.strip().lower() for h in rows[0]]
    column, note_column, start = 0, None, 0
    if "email" in header or "address" in header:
        column = header.index("email") if "email" in header else header.index("address")
        note_column = header.index("note") if "note" in header else None
        start = 1
    wanted: dict[str, str] = {}
    for number, row in enumerate(rows[start:], start=start + 1):
        value = normal(row[column]) if len(row) > column else ""
        if not value:
            if any(cell.strip() for cell in row):  # a blank line is no row: not reported
                done.no_address.append(lines[number - 1])
            continue
        try:
            validate_email(value)
        except ValidationError:
            text = gettext("“%(address)s” is not an email address.")
            done.errors.append((number, text % {"address": value[:100]}))
            continue
        note = (
            row[note_column].strip() if note_column is not None and len(row) > note_column else ""
        )
        wanted.setdefault(value, note)
    known = set(
        Suppression.objects.for_tenant(tenant)
        .filter(address__in=wanted)
        .values_list("address", flat=True)
    )
    fresh = [
        Suppression(
            tenant=tenant,
            address=address,
            reason=SuppressionReason.MANUAL,
            detail=note[:500],
            created_by=by,
        )
        for address, note in sorted(wanted.items())
        if address not in known
    ]
    Suppression.objects.bulk_create(fresh, ignore_conflicts=True)
    done.added, done.existing = len(fresh), len(wanted) - len(fresh)
    if done.added:
        audit(
            tenant=tenant,
            actor=by,
            subject=gettext_noop("suppression list"),
            action="suppressions imported",
            changes={"added": done.added},
        )
    return done

"""Writes for contacts, templates, campaigns and messages. The send itself is ``pipeline``."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import secrets
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, CharField, Q, Value, When
from django.utils import timezone

from accounts.models import Tenant, User
from channels.models import BlockedDomain, Identity
from channels.routing import Route, Source, route
from sending import merge, mime
from sending.models import (
    CAMPAIGN_ENDED,
    CAMPAIGN_ENDED_BOUNCE,
    ApiToken,
    Campaign,
    CampaignStatus,
    CampaignStep,
    Contact,
    ContactImport,
    Enrollment,
    EnrollmentStatus,
    Hold,
    ImportStatus,
    Message,
    MessageStatus,
    Template,
)

log = logging.getLogger(__name__)

IMPORT_MAX_ROWS = 50_000
IMPORT_CHUNK = 250
IMPORT_MAX_ERRORS_KEPT = 200


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].lower()


def blocked_domain(tenant_id: int, email: str) -> str | None:
    """The blocked domain that covers this address (the domain itself or a parent), if any."""
    parts = domain_of(email).split(".")
    candidates = [".".join(parts[i:]) for i in range(len(parts) - 1)]
    hit = (
        BlockedDomain.objects.filter(tenant_id=tenant_id, domain__in=candidates)
        .values_list("domain", flat=True)
        .first()
    )
    return hit


def enqueue_on_commit(message: Message) -> None:
    """Hand a due message to a worker once the transaction that made it due has committed."""
    from sending import tasks

    if message.status == MessageStatus.QUEUED:
        pk = message.pk
        # robust: with the broker down the message is saved all the same and the request
        # succeeds; the error is logged, and dispatch_due hands the message over later.
        transaction.on_commit(lambda: tasks.send_message.delay(pk), robust=True)


# --- messages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    to_email: str
    subject: str
    body: str
    identity: Identity | None = None
    source: str = Source.WEB
    template: Template | None = None
    contact: Contact | None = None
    send_at: datetime | None = None


@transaction.atomic
def message_create(
    *,
    tenant: Tenant,
    sender: User,
    draft: Draft,
    enrollment: Enrollment | None = None,
    step: CampaignStep | None = None,
) -> Message:
    """Validate, route and store one message; it is sent after commit (or at ``send_at``).

    Raises ``ValidationError`` with a sentence a user can act on.
    """
    to_email = draft.to_email.strip()
    try:
        mime.check_header_values(recipient=to_email, subject=draft.subject)
        validate_email(to_email)
    except (mime.HeaderInjection, ValidationError) as error:
        raise ValidationError(getattr(error, "message", str(error))) from None
    where = route(user=sender, identity=draft.identity, source=draft.source)
    if where.channel is None:
        raise ValidationError(where.reason)
    channel = where.channel
    identity = draft.identity
    if identity is not None:
        from_email, from_name = identity.email, identity.name
    else:
        from_email = channel.account_email or sender.email
        from_name = sender.get_full_name()
    mime.check_header_values(from_name=from_name)
    now = timezone.now()
    later = draft.send_at is not None and draft.send_at > now
    message = Message.objects.create(
        tenant=tenant,
        sender=sender,
        identity=identity,
        channel=channel,
        source=draft.source,
        template=draft.template,
        campaign_step=step,
        enrollment=enrollment,
        contact=draft.contact,
        to_email=to_email,
        to_domain=domain_of(to_email),
        from_email=from_email,
        from_name=from_name,
        subject=draft.subject,
        body=draft.body,
        message_id=mime.new_message_id(from_email),
        status=MessageStatus.SCHEDULED if later else MessageStatus.QUEUED,
        scheduled_at=draft.send_at if later else None,
        next_attempt_at=None if later else now,
        dispatched_at=None if later else now,
    )
    enqueue_on_commit(message)
    return message


def message_retry(*, message: Message) -> Message:
    if not message.can_retry:
        raise ValidationError("Only failed messages can be retried.")
    now = timezone.now()
    updated = Message.objects.filter(pk=message.pk, status=MessageStatus.FAILED).update(
        status=MessageStatus.QUEUED,
        hold=Hold.NONE,
        status_detail="Retry requested.",
        uncertain=False,
        attempts=0,
        next_attempt_at=now,
        dispatched_at=now,
        failed_at=None,
    )
    message.refresh_from_db()
    if updated:
        enqueue_on_commit(message)
    return message


@transaction.atomic
def messages_reroute_held(*, tenant: Tenant, user: User) -> tuple[int, str]:
    """The user's mail held for want of a channel (its channel was retired) goes out through
    the channel each message would take now. Returns how many, or 0 and why not."""
    held = list(
        Message.objects.for_tenant(tenant)
        .filter(sender=user, status=MessageStatus.QUEUED, hold=Hold.CHANNEL)
        .select_for_update()
    )
    routes: dict[tuple[int | None, str], Route] = {}
    now = timezone.now()
    by_channel: dict[int, list[Message]] = {}
    reason = ""
    for message in held:
        key = (message.identity_id, message.source)
        if key not in routes:
            routes[key] = route(user=user, identity=message.identity, source=message.source)
        where = routes[key]
        if where.channel is None:
            reason = where.reason
            continue
        if not where.can_send:
            reason = (
                f"{where.channel.label} is not working right now: repair it under Delivery "
                "channels (or choose another channel for the identity)."
            )
            continue
        by_channel.setdefault(where.channel.pk, []).append(message)
    for channel_id, messages in by_channel.items():  # one statement per new channel
        Message.objects.filter(pk__in=[m.pk for m in messages]).update(
            channel_id=channel_id,
            hold=Hold.NONE,
            status_detail="",
            next_attempt_at=now,
            dispatched_at=now,
        )
        for message in messages:
            enqueue_on_commit(message)
    return sum(len(messages) for messages in by_channel.values()), reason


def message_delete(*, message: Message) -> None:
    if message.is_campaign:
        raise ValidationError("Campaign emails cannot be deleted; end the campaign instead.")
    if not message.can_delete:
        raise ValidationError("This message is being sent or was sent; it cannot be deleted.")
    Message.objects.filter(pk=message.pk).exclude(status=MessageStatus.SENDING).delete()


@transaction.atomic
def message_bounced(*, message: Message, detail: str = "") -> None:
    """The message bounced: it is marked, and the rest of that person's campaign ends."""
    messages_bounced({message.pk: detail})


def messages_bounced(details: dict[int, str]) -> list[int]:
    """Mark these sent messages bounced ({pk: why}) and end the campaign for each person, in a
    few statements whatever their number. Returns the pks that changed (those still sent)."""
    if not details:
        return []
    now = timezone.now()
    if connection.vendor == "postgresql":
        rows = _bounce_rows_postgresql(details, now)
    else:
        rows = _bounce_rows_portable(details, now)
    enrollments_end(enrollment_ids={e for _, e in rows if e}, reason=CAMPAIGN_ENDED_BOUNCE)
    return sorted(pk for pk, _ in rows)


def _bounce_rows_postgresql(details: dict[int, str], now: datetime) -> list[tuple[int, int | None]]:
    """One UPDATE … FROM unnest(…) RETURNING: the ids and texts travel as two array parameters,
    so the statement stays small however many messages a batch holds."""
    ids = sorted(details)
    table = Message._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {table} AS m
                   SET status = %s, bounced_at = %s, status_detail = d.detail
                  FROM unnest(%s::bigint[], %s::text[]) AS d(id, detail)
                 WHERE m.id = d.id AND m.status = %s
             RETURNING m.id, m.enrollment_id""",  # noqa: S608 - the table name is ours
            [
                MessageStatus.BOUNCED,
                now,
                ids,
                [details[pk][:500] for pk in ids],
                MessageStatus.SENT,
            ],
        )
        return [(int(pk), enrollment) for pk, enrollment in cursor.fetchall()]


def _bounce_rows_portable(details: dict[int, str], now: datetime) -> list[tuple[int, int | None]]:
    rows = list(
        Message.objects.select_for_update()
        .filter(pk__in=details, status=MessageStatus.SENT)
        .order_by("pk")
        .values_list("pk", "enrollment_id")
    )
    changed = [pk for pk, _ in rows]
    if changed:
        why = Case(
            *[When(pk=pk, then=Value(details[pk][:500])) for pk in changed],
            default=Value(""),
            output_field=CharField(),
        )
        Message.objects.filter(pk__in=changed).update(
            status=MessageStatus.BOUNCED, bounced_at=now, status_detail=why
        )
    return rows


def enrollment_end(*, enrollment_id: int, reason: str) -> None:
    enrollments_end(enrollment_ids={enrollment_id}, reason=reason)


def enrollments_end(*, enrollment_ids: set[int], reason: str) -> None:
    if not enrollment_ids:
        return
    now = timezone.now()
    Enrollment.objects.filter(pk__in=enrollment_ids, status=EnrollmentStatus.ACTIVE).update(
        status=EnrollmentStatus.ENDED, ended_reason=reason, ended_at=now
    )
    Message.objects.filter(enrollment_id__in=enrollment_ids).pending().update(
        status=MessageStatus.FAILED, hold=Hold.NONE, status_detail=reason, failed_at=now
    )


# --- templates ------------------------------------------------------------------------------


def template_check(subject: str, body: str) -> None:
    unknown = merge.unknown_fields(subject + "\n" + body)
    if unknown:
        known = ", ".join("{{" + f + "}}" for f in merge.FIELDS)
        raise ValidationError(
            f"Unknown merge field {', '.join('{{' + u + '}}' for u in unknown)}. "
            f"Available: {known}."
        )


def render_for(
    *,
    subject: str,
    body: str,
    contact: Contact | None,
    to_email: str,
    identity: Identity | None,
    sender: User,
) -> merge.Rendered:
    values = merge.values_for(
        contact,
        email=to_email,
        sender_name=identity.name if identity else sender.get_full_name(),
        sender_email=identity.email if identity else sender.email,
    )
    return merge.render(subject, body, values)


# --- contacts -------------------------------------------------------------------------------


def contact_save(
    *,
    tenant: Tenant,
    owner: User,
    email: str,
    first_name: str = "",
    last_name: str = "",
    company: str = "",
) -> tuple[Contact, bool]:
    contact, created = Contact.objects.update_or_create(
        tenant=tenant,
        email=email.strip().lower(),
        defaults={"first_name": first_name, "last_name": last_name, "company": company},
        create_defaults={
            "owner": owner,
            "first_name": first_name,
            "last_name": last_name,
            "company": company,
        },
    )
    return contact, created


COLUMN_ALIASES = {
    "email": {"email", "email address", "e-mail", "mail"},
    "first_name": {"first_name", "first name", "firstname", "given name"},
    "last_name": {"last_name", "last name", "lastname", "surname", "family name"},
    "company": {"company", "company name", "organisation", "organization", "account"},
}


def import_start(*, tenant: Tenant, user: User, file_name: str, raw: bytes) -> ContactImport:
    """Store the upload and queue its processing. Raises ``ValidationError`` for a bad file,
    naming the row at fault; then nothing of the file is kept or imported."""
    text = _decode_upload(raw)
    rows = _count_rows(text)
    header = next(csv.reader(io.StringIO(text)), None)
    if not header or "email" not in _columns(header):
        raise ValidationError(
            "The first row must name the columns, including one called “email” "
            "(others we read: first_name, last_name, company)."
        )
    if rows == 0:
        raise ValidationError("The file has a header row but no contacts.")
    if rows > IMPORT_MAX_ROWS:
        raise ValidationError(f"At most {IMPORT_MAX_ROWS:,} rows per file; this one has {rows:,}.")
    job = ContactImport.objects.create(
        tenant=tenant,
        user=user,
        file_name=file_name[:255],
        data=text,
        total_rows=rows,
        dispatched_at=timezone.now(),
    )
    from sending import tasks

    # robust: with the broker down the upload is kept and the page answers; imports_dispatch_due
    # hands it over later.
    transaction.on_commit(lambda: tasks.import_contacts.delay(job.pk), robust=True)
    return job


NOTHING_IMPORTED = "Nothing was imported"
# Valid UTF-8 multi-byte sequences: a file that has them is UTF-8, even if damaged somewhere.
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def _decode_upload(raw: bytes) -> str:
    """UTF-8, or Windows-1252 for files from older spreadsheet programs; damaged UTF-8 is
    refused, naming the row, rather than read as Windows-1252 (which would garble every
    accented name in the file)."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        bad = error.start
    if not _UTF8_SEQUENCE.search(raw):
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            pass
    row = _row_at(raw[:bad].decode("utf-8-sig", "replace"))
    raise ValidationError(
        f"Row {row}: the file is not valid UTF-8 text. "
        f"{NOTHING_IMPORTED}: save it as CSV (UTF-8) and upload it again."
    )


def _row_at(before: str) -> int:
    """The CSV row (the header is row 1) in which the text after ``before`` starts."""
    try:
        # A stand-in character completes the row being read, or starts the next one.
        return sum(1 for _ in csv.reader(io.StringIO(before + "x")))
    except csv.Error:
        return before.count("\n") + 1


def _count_rows(text: str) -> int:
    """The number of rows after the header, or ``ValidationError`` naming the first row that
    PostgreSQL or the CSV reader cannot take: a NUL byte, or a field over the reader's limit
    (usually an unclosed quote running on to the end of the file)."""
    number = 0
    reader = csv.reader(io.StringIO(text))
    try:
        for number, row in enumerate(reader, start=1):
            if any("\x00" in field for field in row):
                raise ValidationError(
                    f"Row {number}: the file contains a NUL byte, so it is not CSV text. "
                    f"{NOTHING_IMPORTED}: save it as CSV (UTF-8) and upload it again."
                )
    except csv.Error as error:
        number += 1  # the row being read when the reader gave up
        if "field larger than field limit" in str(error):
            raise ValidationError(
                f"Row {number}: a field is longer than {csv.field_size_limit():,} characters. "
                f"{NOTHING_IMPORTED}: check that every quote in that row is closed."
            ) from None
        raise ValidationError(f"Row {number}: {error}. {NOTHING_IMPORTED}.") from None
    return max(number - 1, 0)


def redispatch_before(now: datetime) -> datetime:
    """Work handed to the broker before this and not started since is handed over again."""
    return now - timedelta(seconds=settings.MSC_REDISPATCH_SECONDS)


def imports_dispatch_due(now: datetime | None = None) -> int:
    """Hand over again the pending imports whose task has not started in MSC_REDISPATCH_SECONDS
    (lost with the broker, say). Runs with ``dispatch_due``."""
    from sending import tasks

    now = now or timezone.now()
    stale = redispatch_before(now)
    due = list(
        ContactImport.objects.filter(status=ImportStatus.PENDING)
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=stale))
        .values_list("pk", flat=True)[:100]
    )
    if due:
        ContactImport.objects.filter(pk__in=due).update(dispatched_at=now)
        for pk in due:
            tasks.import_contacts.delay(pk)
    return len(due)


def _columns(header: list[str]) -> dict[str, int]:
    found = {}
    for index, name in enumerate(header):
        cleaned = name.strip().lower()
        for field, aliases in COLUMN_ALIASES.items():
            if cleaned in aliases and field not in found:
                found[field] = index
    return found


def _progress_key(import_id: int) -> str:
    return f"contact-import:{import_id}:progress"


def import_progress(job: ContactImport) -> ContactImport:
    """The job with the progress of its running import (kept in the cache until the end)."""
    if job.status == ImportStatus.RUNNING:
        try:
            counts = cache.get(_progress_key(job.pk))
        except Exception:  # progress is a courtesy: a cache outage must not break the page
            counts = None
        for field, value in (counts or {}).items():
            setattr(job, field, value)
    return job


def _report_progress(import_id: int, counts: dict[str, object]) -> None:
    try:
        cache.set(_progress_key(import_id), counts, timeout=settings.CELERY_TASK_TIME_LIMIT)
    except Exception:  # progress is a courtesy: a cache outage must not stop the import
        log.warning("Could not record the progress of contact import %s", import_id)


def import_run(*, import_id: int) -> ContactImport:
    """Import the contacts of one upload, all or nothing.

    Every contact of the file is written in one transaction: a failure part-way leaves no
    contact from the file, and the job is marked failed (upload it again). While it runs, its
    progress is kept in the cache for the page to poll (``import_progress``); the counts are
    stored with the outcome. Rows are upserted by email, so running an import twice (a retried
    task) changes nothing.
    """
    claimed = ContactImport.objects.filter(pk=import_id, status=ImportStatus.PENDING).update(
        status=ImportStatus.RUNNING
    )
    job = ContactImport.objects.select_related("tenant", "user").get(pk=import_id)
    if not claimed:
        return job
    try:
        with transaction.atomic():
            counts = _import_rows(job)
    except Exception:
        log.exception("Contact import %s failed; nothing from it was imported", job.pk)
        ContactImport.objects.filter(pk=job.pk).update(
            status=ImportStatus.FAILED,
            processed_rows=0,
            created_count=0,
            updated_count=0,
            error_count=0,
            errors=[],
            data="",
            finished_at=timezone.now(),
        )
    else:
        ContactImport.objects.filter(pk=job.pk).update(
            status=ImportStatus.DONE, data="", finished_at=timezone.now(), **counts
        )
    with suppress(Exception):
        cache.delete(_progress_key(job.pk))
    job.refresh_from_db()
    return job


def _import_rows(job: ContactImport) -> dict[str, Any]:
    reader = csv.reader(io.StringIO(job.data))
    columns = _columns(next(reader))
    errors: list[dict[str, object]] = []
    error_count = created = updated = processed = 0

    def cell(row: list[str], field: str, limit: int) -> str:
        index = columns.get(field)
        return row[index].strip()[:limit] if index is not None and index < len(row) else ""

    def counts() -> dict[str, Any]:
        return {
            "processed_rows": processed,
            "created_count": created,
            "updated_count": updated,
            "error_count": error_count,
            "errors": errors,
        }

    for number, row in enumerate(reader, start=2):
        processed += 1
        email = cell(row, "email", 254)
        problem = ""
        if not email:
            problem = "No email address."
        else:
            try:
                validate_email(email)
            except ValidationError:
                problem = f"“{email}” is not a valid email address."
        if problem:
            error_count += 1
            if len(errors) < IMPORT_MAX_ERRORS_KEPT:
                errors.append({"row": number, "message": problem})
        else:
            try:
                with transaction.atomic():
                    _, was_created = contact_save(
                        tenant=job.tenant,
                        owner=job.user,
                        email=email,
                        first_name=cell(row, "first_name", 100),
                        last_name=cell(row, "last_name", 100),
                        company=cell(row, "company", 200),
                    )
            except IntegrityError:
                was_created = False
            created += was_created
            updated += not was_created
        if processed % IMPORT_CHUNK == 0:
            _report_progress(job.pk, counts())
    return counts()


# --- campaigns ------------------------------------------------------------------------------


def _first_message(enrollment: Enrollment, *, start: datetime) -> Message | None:
    step = enrollment.campaign.steps.select_related("template").first()
    if step is None:
        return None
    return _step_message(enrollment, step, send_at=start + timedelta(days=step.delay_days))


def _step_message(enrollment: Enrollment, step: CampaignStep, *, send_at: datetime) -> Message:
    campaign = enrollment.campaign
    contact = enrollment.contact
    identity = campaign.identity
    rendered = render_for(
        subject=step.template.subject,
        body=step.template.body,
        contact=contact,
        to_email=contact.email,
        identity=identity,
        sender=campaign.owner,
    )
    return message_create(
        tenant=campaign.tenant,
        sender=campaign.owner,
        draft=Draft(
            to_email=contact.email,
            subject=rendered.subject,
            body=rendered.body,
            identity=identity,
            template=step.template,
            contact=contact,
            send_at=send_at,
        ),
        enrollment=enrollment,
        step=step,
    )


@transaction.atomic
def campaign_enroll(*, campaign: Campaign, contacts: list[Contact]) -> int:
    """Enrol contacts (each at most once). In an active campaign their first step is queued."""
    if campaign.status == CampaignStatus.ENDED:
        raise ValidationError("This campaign has ended; start a new one.")
    added = 0
    now = timezone.now()
    for contact in contacts:
        enrollment, created = Enrollment.objects.get_or_create(
            tenant=campaign.tenant, campaign=campaign, contact=contact
        )
        if not created:
            continue
        added += 1
        if campaign.status in (CampaignStatus.ACTIVE, CampaignStatus.PAUSED):
            _first_message(enrollment, start=now)
    return added


@transaction.atomic
def campaign_start(*, campaign: Campaign) -> Campaign:
    if campaign.status != CampaignStatus.DRAFT:
        raise ValidationError("Only a draft campaign can be started.")
    if not campaign.steps.exists():
        raise ValidationError("Add at least one step before starting the campaign.")
    if campaign.identity is None:
        raise ValidationError("Choose the identity the campaign sends as.")
    where = route(user=campaign.owner, identity=campaign.identity, source=Source.WEB)
    if where.channel is None:
        raise ValidationError(where.reason)
    now = timezone.now()
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.ACTIVE, started_at=now)
    campaign.refresh_from_db()
    for enrollment in campaign.enrollments.select_related("contact", "campaign"):
        _first_message(enrollment, start=now)
    return campaign


def campaign_set_paused(*, campaign: Campaign, paused: bool) -> Campaign:
    """Pausing holds its queued mail (nothing is lost); resuming releases it."""
    source, target = (
        (CampaignStatus.ACTIVE, CampaignStatus.PAUSED)
        if paused
        else (CampaignStatus.PAUSED, CampaignStatus.ACTIVE)
    )
    if not Campaign.objects.filter(pk=campaign.pk, status=source).update(status=target):
        raise ValidationError(
            f"Only an {source.label.lower()} campaign can be {target.label.lower()}."
        )
    if not paused:
        now = timezone.now()
        Message.objects.filter(
            enrollment__campaign=campaign, status=MessageStatus.QUEUED, hold=Hold.PAUSED
        ).update(hold=Hold.NONE, status_detail="", next_attempt_at=now, dispatched_at=None)
    campaign.refresh_from_db()
    return campaign


@transaction.atomic
def campaign_end(*, campaign: Campaign) -> Campaign:
    if campaign.status == CampaignStatus.ENDED:
        return campaign
    now = timezone.now()
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.ENDED, ended_at=now)
    for enrollment_id in campaign.enrollments.filter(status=EnrollmentStatus.ACTIVE).values_list(
        "pk", flat=True
    ):
        enrollment_end(enrollment_id=enrollment_id, reason=CAMPAIGN_ENDED)
    campaign.refresh_from_db()
    return campaign


def campaign_advance(*, message: Message, sent_at: datetime) -> None:
    """After a campaign email is sent: schedule the person's next step, or finish them."""
    if message.enrollment_id is None or message.campaign_step is None:
        return
    enrollment = (
        Enrollment.objects.select_related("campaign__owner", "campaign__identity", "contact")
        .filter(pk=message.enrollment_id, status=EnrollmentStatus.ACTIVE)
        .first()
    )
    if enrollment is None:
        return
    step = (
        enrollment.campaign.steps.select_related("template")
        .filter(position__gt=message.campaign_step.position)
        .first()
    )
    if step is None:
        Enrollment.objects.filter(pk=enrollment.pk).update(
            status=EnrollmentStatus.FINISHED, ended_at=sent_at
        )
        return
    _step_message(enrollment, step, send_at=sent_at + timedelta(days=step.delay_days))


# --- API tokens -----------------------------------------------------------------------------

TOKEN_PREFIX = "msc_"  # noqa: S105 - a prefix, not a secret


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(*, tenant: Tenant, user: User, name: str) -> tuple[ApiToken, str]:
    """Returns the row and the token itself, which is shown once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        tenant=tenant, user=user, name=name, prefix=token[:10], digest=token_digest(token)
    )
    return row, token

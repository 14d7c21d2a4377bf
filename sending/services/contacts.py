"""Contacts: save one, and import a CSV file of them (all or nothing, with progress)."""

from __future__ import annotations

import csv
import io
import logging
import re
from contextlib import suppress
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.formats import number_format
from django.utils.translation import gettext

from accounts.models import Tenant, User
from msc_admin import enqueue
from msc_admin.encoded_words import decoded
from sending.models import Contact, ContactImport, ImportStatus, Suppression
from sending.services.messages import redispatch_before
from sending.services.suppressions import suppressions_for

log = logging.getLogger(__name__)

IMPORT_MAX_ROWS = 50_000
IMPORT_CHUNK = 1000
IMPORT_MAX_ERRORS_KEPT = 200


def contact_save(
    *,
    tenant: Tenant,
    owner: User,
    email: str,
    first_name: str = "",
    last_name: str = "",
    company: str = "",
) -> tuple[Contact, bool]:
    """Add the tenant's contact with this address, or update the one it has: a field the form
    left empty keeps what the contact has (saving "ana@example.com" alone must not wipe Ana's
    name). Returns the contact and whether it is new."""
    given = {"first_name": first_name, "last_name": last_name, "company": company}
    given = {field: decoded(value).strip() for field, value in given.items()}
    contact, created = Contact.objects.update_or_create(
        tenant=tenant,
        email=email.strip().lower(),
        defaults={field: value for field, value in given.items() if value},
        create_defaults={"owner": owner, **given},
    )
    return contact, created


@transaction.atomic
def contact_ensure(
    *, tenant: Tenant, owner: User, email: str, first_name: str = "", last_name: str = ""
) -> Contact:
    """The tenant's contact with this address, added if new. A name given fills in a contact
    that has none and never replaces one it has (pasting "ana@example.com" to enrol Ana must
    not wipe her name). Names written as MIME encoded words are stored decoded."""
    first_name, last_name = decoded(first_name), decoded(last_name)
    contact, created = Contact.objects.get_or_create(
        tenant=tenant,
        email=email.strip().lower(),
        defaults={"owner": owner, "first_name": first_name, "last_name": last_name},
    )
    if not created and (first_name or last_name) and not (contact.first_name or contact.last_name):
        contact.first_name, contact.last_name = first_name, last_name
        contact.save(update_fields=["first_name", "last_name"])
    return contact


COLUMN_ALIASES = {
    "email": {"email", "email address", "e-mail", "mail"},
    "first_name": {"first_name", "first name", "firstname", "given name"},
    "last_name": {"last_name", "last name", "lastname", "surname", "family name"},
    "company": {"company", "company name", "organisation", "organization", "account"},
}


@transaction.atomic
def import_start(*, tenant: Tenant, user: User, file_name: str, raw: bytes) -> ContactImport:
    """Store the upload and queue its processing. Raises ``ValidationError`` for a bad file,
    naming the row at fault; then nothing of the file is kept or imported."""
    text = _decode_upload(raw)
    rows = _count_rows(text)
    header = next(csv.reader(io.StringIO(text)), None)
    if not header or "email" not in _columns(header):
        raise ValidationError(
            gettext(
                "The first row must name the columns, including one called “email” (others we "
                "read: first_name, last_name, company)."
            )
        )
    if rows == 0:
        raise ValidationError(gettext("The file has a header row but no contacts."))
    if rows > IMPORT_MAX_ROWS:
        raise ValidationError(
            gettext("At most %(max)s rows per file; this one has %(rows)s.")
            % {
                "max": number_format(IMPORT_MAX_ROWS, force_grouping=True),
                "rows": number_format(rows, force_grouping=True),
            }
        )
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
    enqueue.after_commit(tasks.import_contacts, job.pk, robust=True)
    return job


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
        gettext(
            "Row %(row)s: the file is not valid UTF-8 text. Nothing was imported: save it as CSV "
            "(UTF-8) and upload it again."
        )
        % {"row": row}
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
                    gettext(
                        "Row %(row)s: the file contains a NUL byte, so it is not CSV text. "
                        "Nothing was imported: save it as CSV (UTF-8) and upload it again."
                    )
                    % {"row": number}
                )
    except csv.Error as error:
        number += 1  # the row being read when the reader gave up
        if "field larger than field limit" in str(error):
            raise ValidationError(
                gettext(
                    "Row %(row)s: a field is longer than %(limit)s characters. Nothing was "
                    "imported: check that every quote in that row is closed."
                )
                % {
                    "row": number,
                    "limit": number_format(csv.field_size_limit(), force_grouping=True),
                }
            ) from None
        raise ValidationError(
            gettext("Row %(row)s: %(error)s. Nothing was imported.")
            % {"row": number, "error": error}
        ) from None
    return max(number - 1, 0)


IMPORT_MAX_RUNS = 3


def imports_dispatch_due(now: datetime | None = None) -> int:
    """Hand over again the pending imports whose task has not started in MSC_REDISPATCH_SECONDS
    (lost with the broker, say), and the running ones whose worker died: a run still "running"
    after the task's hard time limit has ended without a word, and, all or nothing, left no
    contact behind, so it is simply run again (at most ``IMPORT_MAX_RUNS`` times: a file that
    kills its worker every time is failed, not retried for ever). Runs with ``dispatch_due``."""
    from sending import tasks

    now = now or timezone.now()
    stale = redispatch_before(now)
    abandoned = ContactImport.objects.filter(
        status=ImportStatus.RUNNING,
        started_at__lt=stale - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT),
    )
    abandoned.filter(runs__gte=IMPORT_MAX_RUNS).update(
        status=ImportStatus.FAILED,
        data="",
        finished_at=now,
    )
    abandoned.update(status=ImportStatus.PENDING, dispatched_at=None)
    due = list(
        ContactImport.objects.filter(status=ImportStatus.PENDING)
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=stale))
        .values_list("pk", flat=True)[:100]
    )
    if due:
        ContactImport.objects.filter(pk__in=due).update(dispatched_at=now)
        for pk in due:
            enqueue.after_commit(tasks.import_contacts, pk)
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
        status=ImportStatus.RUNNING, started_at=timezone.now(), runs=F("runs") + 1
    )
    job = ContactImport.objects.select_related("tenant", "user").get(pk=import_id)
    if not claimed:
        return job
    try:
        # Its row errors are read by the person who uploaded it, in their language.
        with (
            transaction.atomic(),
            translation.override(job.user.language or settings.LANGUAGE_CODE),
        ):
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
    """Every row checked, the good ones upserted by address a chunk at a time: one query for the
    addresses the tenant already has, one ``INSERT … ON CONFLICT DO UPDATE`` for the chunk.
    Counts as if row by row: a row is "created" when its address was new, "updated" otherwise
    (a second row for an address in the same file updates the first; the last one wins)."""
    reader = csv.reader(io.StringIO(job.data))
    columns = _columns(next(reader))
    errors: list[dict[str, object]] = []
    error_count = created = updated = processed = 0
    chunk: dict[str, Contact] = {}
    rows_in_chunk = 0
    imported: list[str] = []

    def cell(row: list[str], field: str, limit: int) -> str:
        index = columns.get(field)
        return decoded(row[index]).strip()[:limit] if index is not None and index < len(row) else ""

    def counts() -> dict[str, Any]:
        return {
            "processed_rows": processed,
            "created_count": created,
            "updated_count": updated,
            "error_count": error_count,
            "errors": errors,
        }

    def flush() -> None:
        nonlocal created, updated, rows_in_chunk
        if chunk:
            known = set(
                Contact.objects.filter(tenant=job.tenant, email__in=chunk).values_list(
                    "email", flat=True
                )
            )
            Contact.objects.bulk_create(
                chunk.values(),
                update_conflicts=True,
                unique_fields=["tenant", "email"],
                update_fields=["first_name", "last_name", "company"],
            )
            new = len(chunk) - len(known & chunk.keys())
            created += new
            updated += rows_in_chunk - new
        chunk.clear()
        rows_in_chunk = 0

    for number, row in enumerate(reader, start=2):
        processed += 1
        given = cell(row, "email", 254)
        email = given.lower()
        problem = ""
        if not email:
            problem = gettext("No email address.")
        else:
            try:
                validate_email(email)
            except ValidationError:
                problem = gettext("“%(given)s” is not a valid email address.") % {"given": given}
        if problem:
            error_count += 1
            if len(errors) < IMPORT_MAX_ERRORS_KEPT:
                errors.append({"row": number, "message": problem})
        else:
            chunk.pop(email, None)  # the last row for an address wins, as it would row by row
            chunk[email] = Contact(
                tenant=job.tenant,
                owner=job.user,
                email=email,
                first_name=cell(row, "first_name", 100),
                last_name=cell(row, "last_name", 100),
                company=cell(row, "company", 200),
            )
            rows_in_chunk += 1
            imported.append(email)
        if processed % IMPORT_CHUNK == 0:
            flush()
            _report_progress(job.pk, counts())
    flush()
    return {**counts(), **_suppressed_among(job.tenant_id, imported)}


def _suppressed_among(tenant_id: int, emails: list[str]) -> dict[str, Any]:
    """The imported people who are on the suppression list (imported, never mailed): how many,
    and the first of them with the reason."""
    found: dict[str, Suppression] = {}
    for start in range(0, len(emails), 1000):  # one look-up per thousand rows
        found.update(suppressions_for(tenant_id, emails[start : start + 1000]))
    kept = [
        {"email": address, "why": entry.why}
        for address, entry in sorted(found.items())[:IMPORT_MAX_ERRORS_KEPT]
    ]
    return {"suppressed_count": len(found), "suppressed": kept}

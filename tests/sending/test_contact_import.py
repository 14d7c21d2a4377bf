"""Contact CSV import: a file that cannot be imported is refused whole, naming the row, and an
import that fails part-way leaves no contact from its file."""

from __future__ import annotations

import csv

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DataError
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from sending.models import Contact, ContactImport, ImportStatus
from sending.services import contacts as services

HEADER = b"email,first_name,company\n"
LIMIT = csv.field_size_limit()


def _upload(client: Client, raw: bytes, name: str = "leads.csv"):
    return client.post(
        reverse("sending:contact_import"),
        {"file": SimpleUploadedFile(name, raw, content_type="text/csv")},
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (
            HEADER + b"a@x.test,Ann,X\nb@x.test,B\x00b,X\nc@x.test,Cy,X\n",
            "Row 3: the file contains a NUL byte",
        ),
        (b"email,first\x00name\na@x.test,Ann\n", "Row 1: the file contains a NUL byte"),
        (
            HEADER + b"a@x.test,Ann,X\nb@x.test,Bo," + b"x" * (LIMIT + 1) + b"\nc@x.test,Cy,X\n",
            f"Row 3: a field is longer than {LIMIT:,} characters",
        ),
        (  # an unclosed quote runs on to the end of the file
            HEADER + b'a@x.test,"Ann,X\n' + b"c@x.test,Cy,X\n" * (LIMIT // 14 + 1),
            f"Row 2: a field is longer than {LIMIT:,} characters",
        ),
        (  # UTF-8 (José) damaged on the fourth row
            HEADER + "j@x.test,José,X\nk@x.test,Kim,X\n".encode() + b"l@x.test,L\xff,X\n",
            "Row 4: the file is not valid UTF-8 text",
        ),
    ],
    ids=["nul", "nul-in-header", "long-field", "unclosed-quote", "bad-utf8"],
)
def test_a_file_that_cannot_be_imported_is_refused_whole_naming_the_row(
    rep_client: Client, acme: Tenant, raw: bytes, said: str
) -> None:
    response = _upload(rep_client, raw)
    assert response.status_code == 400
    page = response.content.decode()
    assert said in page, page[:2000]
    assert "Nothing was imported" in page
    assert Contact.objects.count() == 0
    assert ContactImport.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_windows_1252_file_from_an_older_spreadsheet_still_imports(
    rep_client: Client, acme: Tenant
) -> None:
    raw = (HEADER.decode() + "m@x.test,Müller,Café Crème\n").encode("cp1252")
    response = _upload(rep_client, raw)
    assert response.status_code == 302
    contact = Contact.objects.get(tenant=acme)
    assert (contact.first_name, contact.company) == ("Müller", "Café Crème")
    assert ContactImport.objects.get().status == ImportStatus.DONE


@pytest.mark.django_db(transaction=True)
def test_an_import_failing_part_way_leaves_no_contact_from_its_file(
    rep_client: Client, acme: Tenant, monkeypatch
) -> None:
    Contact.objects.create(tenant=acme, email="kept@x.test", first_name="Kept")
    monkeypatch.setattr(services, "IMPORT_CHUNK", 100)
    rows = 300  # three chunks: the third one fails
    raw = HEADER + b"".join(b"p%d@x.test,P%d,X\n" % (i, i) for i in range(rows))
    real_bulk_create = Contact.objects.bulk_create
    chunks: list[int] = []
    progress: list[int] = []

    def fails_on_the_third_chunk(objs, **kwargs):
        chunks.append(len(objs))
        if len(chunks) == 3:  # past two chunks: their progress is visible to the page
            progress.append(services.import_progress(ContactImport.objects.get()).processed_rows)
            raise DataError("the database refused a row")
        return real_bulk_create(objs, **kwargs)

    monkeypatch.setattr(Contact.objects, "bulk_create", fails_on_the_third_chunk)
    response = _upload(rep_client, raw)  # the task runs in-process, right after the upload
    assert response.status_code == 302
    assert chunks == [100, 100, 100] and progress == [200]
    job = ContactImport.objects.get()
    assert job.status == ImportStatus.FAILED
    assert (job.processed_rows, job.created_count, job.data) == (0, 0, "")
    assert list(Contact.objects.values_list("email", flat=True)) == ["kept@x.test"]
    page = rep_client.get(response["Location"]).content.decode()
    assert "Failed" in page and "nothing from this file was imported" in page


@pytest.mark.django_db(transaction=True)
def test_rows_count_as_if_imported_one_by_one(rep_client: Client, acme: Tenant) -> None:
    """New addresses are created, known ones updated (never their owner), a second row for an
    address updates the first (the last one wins), bad rows are named; case does not matter."""
    Contact.objects.create(tenant=acme, email="old@x.test", first_name="Old", company="Was")
    raw = HEADER + (
        b"new@x.test,New,N\n"
        b"OLD@x.test,Olive,Now\n"
        b"twice@x.test,First,T\n"
        b"not-an-address,Nope,X\n"
        b"Twice@x.test,Second,T\n"
    )
    assert _upload(rep_client, raw).status_code == 302
    job = ContactImport.objects.get()
    assert job.status == ImportStatus.DONE
    assert (job.processed_rows, job.created_count, job.updated_count, job.error_count) == (
        5,
        2,
        2,
        1,
    )
    assert job.errors == [{"row": 5, "message": "“not-an-address” is not a valid email address."}]
    by_email = {c.email: c for c in Contact.objects.filter(tenant=acme)}
    assert set(by_email) == {"new@x.test", "old@x.test", "twice@x.test"}
    assert (by_email["old@x.test"].first_name, by_email["old@x.test"].company) == ("Olive", "Now")
    assert by_email["old@x.test"].owner is None  # an update never takes the contact over
    assert by_email["twice@x.test"].first_name == "Second"
    assert by_email["new@x.test"].owner is not None


@pytest.mark.django_db(transaction=True)
def test_an_import_never_blanks_a_name_it_leaves_empty(rep_client: Client, acme: Tenant) -> None:
    """An empty cell, or a column the file lacks, keeps what the contact has (as the contact
    form does); a second row for an address with an empty cell keeps the first row's."""
    Contact.objects.create(
        tenant=acme, email="ann@x.test", first_name="Ann", last_name="Newton", company="NewCo"
    )
    Contact.objects.create(tenant=acme, email="jose@x.test", first_name="José", company="Ñoño")
    raw = HEADER + b"ann@x.test,,\ntwice@x.test,First,T\ntwice@x.test,,\n"
    assert _upload(rep_client, raw).status_code == 302
    assert _upload(rep_client, b"email\njose@x.test\n").status_code == 302
    names = {
        c.email: (c.first_name, c.last_name, c.company) for c in Contact.objects.filter(tenant=acme)
    }
    assert names == {
        "ann@x.test": ("Ann", "Newton", "NewCo"),
        "jose@x.test": ("José", "", "Ñoño"),
        "twice@x.test": ("First", "", "T"),
    }


@pytest.mark.django_db(transaction=True)
def test_an_import_whose_worker_died_is_run_again_and_a_file_that_kills_it_is_failed(
    rep_user: User, acme: Tenant, settings
) -> None:
    """A run still "running" after the task's hard time limit was ended by its worker dying
    (all or nothing: no contact is left behind): it runs again; after three, it fails."""
    from datetime import timedelta

    from django.utils import timezone

    raw = HEADER + b"a@x.test,Ann,X\n"
    job = ContactImport.objects.create(
        tenant=acme, user=rep_user, file_name="a.csv", data=raw.decode(), total_rows=1
    )
    long_ago = timezone.now() - timedelta(
        seconds=settings.CELERY_TASK_TIME_LIMIT + settings.MSC_REDISPATCH_SECONDS + 60
    )
    ContactImport.objects.filter(pk=job.pk).update(
        status=ImportStatus.RUNNING, started_at=long_ago, runs=1, data=raw.decode()
    )
    recent = ContactImport.objects.create(
        tenant=acme,
        user=job.user,
        file_name="b.csv",
        data=raw.decode(),
        total_rows=1,
        status=ImportStatus.RUNNING,
        started_at=timezone.now(),
        runs=1,
    )
    assert services.imports_dispatch_due() == 1  # in autocommit: the task runs in-process now
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE and job.runs == 2 and job.created_count == 1
    recent.refresh_from_db()
    assert recent.status == ImportStatus.RUNNING  # may still be running: left alone

    ContactImport.objects.filter(pk=recent.pk).update(started_at=long_ago, runs=3)
    assert services.imports_dispatch_due() == 0
    recent.refresh_from_db()
    assert recent.status == ImportStatus.FAILED and recent.data == ""
    assert recent.finished_at is not None


@pytest.mark.django_db(transaction=True)
def test_the_import_counts_read_as_one_when_there_is_one(rep_client: Client, acme: Tenant) -> None:
    response = _upload(rep_client, HEADER + b"a@x.test,Ann,X\nnot-an-email,Bo,X\n")
    assert response.status_code == 302
    page = rep_client.get(response["Location"]).content.decode()
    assert "1 new contact · 0 updated · 1 row with errors" in page
    assert (ContactImport.objects.get().created_count, Contact.objects.count()) == (1, 1)


@pytest.mark.django_db(transaction=True)
def test_the_progress_of_a_one_row_file_reads_one_row(rep_client: Client, acme: Tenant) -> None:
    response = _upload(rep_client, HEADER + b"a@x.test,Ann,X\n")
    page = rep_client.get(response["Location"]).content.decode()
    assert ": 1 of 1 row.</p>" in page and "1 rows" not in page
    assert Contact.objects.count() == 1

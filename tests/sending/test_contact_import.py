"""Contact CSV import: a file that cannot be imported is refused whole, naming the row, and an
import that fails part-way leaves no contact from its file."""

from __future__ import annotations

import csv

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DataError
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant
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
    rows = 300  # more than one progress chunk
    raw = HEADER + b"".join(b"p%d@x.test,P%d,X\n" % (i, i) for i in range(rows))
    real_save = services.contact_save
    seen: dict[str, int] = {"n": 0}
    progress: list[int] = []

    def fails_on_row_280(**kwargs):
        seen["n"] += 1
        if seen["n"] == 260:  # past the first chunk: its progress is visible to the page
            job = ContactImport.objects.get()
            progress.append(services.import_progress(job).processed_rows)
        if seen["n"] == 280:
            raise DataError("the database refused a row")
        return real_save(**kwargs)

    monkeypatch.setattr(services, "contact_save", fails_on_row_280)
    response = _upload(rep_client, raw)  # the task runs in-process, right after the upload
    assert response.status_code == 302
    assert progress == [250]
    job = ContactImport.objects.get()
    assert job.status == ImportStatus.FAILED
    assert (job.processed_rows, job.created_count, job.data) == (0, 0, "")
    assert list(Contact.objects.values_list("email", flat=True)) == ["kept@x.test"]
    page = rep_client.get(response["Location"]).content.decode()
    assert "Failed" in page and "nothing from this file was imported" in page


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

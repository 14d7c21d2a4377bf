"""The Suppressions page: everyone sees why; admins search, filter, remove (confirmed, audited),
export and import; reps cannot change it; another tenant sees and changes nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from channels.models import ChannelAuditEvent
from msc_admin.stored import read, stored
from sending.models import Contact, ContactImport, Suppression, SuppressionReason
from sending.services.suppressions import bounce_detail, suppression_add

pytestmark = pytest.mark.django_db(transaction=True)

LIST = reverse("sending:suppressions")
REMOVE = reverse("sending:suppressions_remove")


@pytest.fixture
def entries(acme: Tenant, admin_user: User) -> list[Suppression]:
    return [
        Suppression.objects.create(
            tenant=acme,
            address="former.ravi.iyer@soylent.example",
            reason=SuppressionReason.HARD_BOUNCE,
            detail="Hard bounce 550 5.1.1 on 12 Nov, from “Intro”",
        ),
        Suppression.objects.create(
            tenant=acme,
            address="full@prospect.test",
            reason=SuppressionReason.SOFT_REPEATED,
            detail="Soft bounces repeated, the last 452 4.2.2 on 13 Nov, from “Intro”",
        ),
        Suppression.objects.create(
            tenant=acme,
            address="=cmd@evil.test",
            reason=SuppressionReason.MANUAL,
            created_by=admin_user,
        ),
    ]


def test_admins_search_and_filter_by_reason(
    entries: list[Suppression], admin_client: Client
) -> None:
    page = admin_client.get(LIST).content.decode()
    assert "550 5.1.1 on 12 Nov, from “Intro”" in page
    assert "Soft bounces repeated" in page and "Added by an admin" in page
    assert 'name="ids"' in page and "Remove the chosen addresses" in page
    found = admin_client.get(LIST, {"q": "ravi"}).content.decode()
    assert "former.ravi.iyer@soylent.example" in found and "full@prospect.test" not in found
    soft = admin_client.get(LIST, {"reason": "soft_repeated"}).content.decode()
    assert "full@prospect.test" in soft and "former.ravi" not in soft


def test_reps_see_why_but_cannot_change_the_list(
    entries: list[Suppression], rep_client: Client
) -> None:
    page = rep_client.get(LIST)
    assert page.status_code == 200
    body = page.content.decode()
    assert "550 5.1.1 on 12 Nov" in body and "ask yours" in body
    assert 'name="ids"' not in body and "Import a CSV file" not in body
    pk = entries[0].pk
    assert rep_client.post(REMOVE, {"ids": [pk], "confirm": "yes"}).status_code == 403
    assert (
        rep_client.post(reverse("sending:suppression_add"), {"address": "x@y.test"}).status_code
        == 403
    )
    assert rep_client.get(reverse("sending:suppressions_export")).status_code == 403
    assert Suppression.objects.count() == 3


def test_removal_asks_first_then_removes_and_audits(
    acme: Tenant, entries: list[Suppression], admin_client: Client, admin_user: User
) -> None:
    chosen = [entries[0].pk, entries[1].pk]
    confirm = admin_client.post(REMOVE, {"ids": chosen})
    assert confirm.status_code == 200
    body = confirm.content.decode()
    assert "Remove from the suppression list?" in body and "Remove 2 addresses" in body
    assert Suppression.objects.count() == 3  # nothing removed yet
    done = admin_client.post(REMOVE, {"ids": chosen, "confirm": "yes"}, follow=True)
    assert "Removed 2 addresses from the list" in done.content.decode()
    assert list(Suppression.objects.values_list("address", flat=True)) == ["=cmd@evil.test"]
    audits = ChannelAuditEvent.objects.filter(tenant=acme, action="suppression removed")
    assert sorted(read(subject) for subject in audits.values_list("subject", flat=True)) == [
        "suppression of former.ravi.iyer@soylent.example",
        "suppression of full@prospect.test",
    ]
    assert {a.actor for a in audits} == {admin_user}
    assert audits.get(subject__contains="soylent.example").changes["reason"] == "Hard bounce"


def test_another_tenants_admin_sees_and_removes_nothing(
    entries: list[Suppression], outsider_user: User
) -> None:
    outsider = Client()
    outsider.force_login(outsider_user)
    page = outsider.get(LIST).content.decode()
    assert "soylent.example" not in page
    ids = [e.pk for e in entries]
    outsider.post(REMOVE, {"ids": ids, "confirm": "yes"})
    assert Suppression.objects.count() == 3
    export = b"".join(outsider.get(reverse("sending:suppressions_export")).streaming_content)
    assert b"soylent" not in export


def test_anonymous_visitors_are_sent_to_login(client: Client) -> None:
    response = client.get(LIST)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_export_streams_the_filtered_list_with_formulas_defused(
    entries: list[Suppression], admin_client: Client
) -> None:
    response = admin_client.get(reverse("sending:suppressions_export"))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0] == "email,reason,reason_label,detail,added_at,added_by"
    assert any(line.startswith("'=cmd@evil.test,manual,Added by an admin") for line in lines)
    assert len(lines) == 4
    only = admin_client.get(reverse("sending:suppressions_export"), {"reason": "hard_bounce"})
    rows = b"".join(only.streaming_content).decode().splitlines()[1:]
    assert len(rows) == 1 and rows[0].startswith("former.ravi.iyer@soylent.example,hard_bounce")


def test_import_adds_manual_entries_names_bad_rows_and_is_audited(
    acme: Tenant, entries: list[Suppression], admin_client: Client, admin_user: User
) -> None:
    csv = "email,note\nNew@Prospect.test,asked us\nnot-an-address,\nfull@prospect.test,\n"
    upload = SimpleUploadedFile("list.csv", csv.encode(), content_type="text/csv")
    done = admin_client.post(
        reverse("sending:suppressions_import"), {"file": upload}, follow=True
    ).content.decode()
    assert "1 address added, 1 already on the list" in done
    assert "Row 3: “not-an-address” is not an email address." in done
    new = Suppression.objects.get(address="new@prospect.test")
    assert (new.reason, new.detail, new.created_by) == ("manual", "asked us", admin_user)
    assert Suppression.objects.get(address="full@prospect.test").reason == "soft_repeated"
    assert ChannelAuditEvent.objects.filter(action="suppressions imported").count() == 1


def test_the_contact_list_marks_suppressed_people(
    acme: Tenant, entries: list[Suppression], rep_user: User, rep_client: Client
) -> None:
    ravi = Contact.objects.create(tenant=acme, email="former.ravi.iyer@soylent.example")
    fine = Contact.objects.create(tenant=acme, email="fine@prospect.test")
    page = rep_client.get(reverse("sending:contacts")).content.decode()
    row = page.split(f'id="contact-{ravi.pk}"')[1].split("</tr>")[0]
    assert "suppressed: hard bounce on" in row
    assert "suppressed" not in page.split(f'id="contact-{fine.pk}"')[1].split("</tr>")[0]


def test_the_contact_import_marks_suppressed_people(
    acme: Tenant, entries: list[Suppression], rep_client: Client
) -> None:
    raw = b"email,first_name\nFormer.Ravi.Iyer@soylent.example,Ravi\nnew@prospect.test,New\n"
    response = rep_client.post(
        reverse("sending:contact_import"),
        {"file": SimpleUploadedFile("leads.csv", raw, content_type="text/csv")},
        follow=True,
    )
    job = ContactImport.objects.get()
    assert (job.status, job.created_count, job.suppressed_count) == ("done", 2, 1)
    assert job.suppressed == [
        {
            "email": "former.ravi.iyer@soylent.example",
            "why": "Hard bounce 550 5.1.1 on 12 Nov, from “Intro”",
        }
    ]
    page = rep_client.get(reverse("sending:contact_import_status", args=[job.pk])).content
    text = page.decode()
    assert "1 imported person is on the suppression list and will not be mailed" in text
    assert "Hard bounce 550 5.1.1 on 12 Nov" in text
    assert response.status_code == 200


ADD = reverse("sending:suppression_add")


def test_a_mistake_in_the_add_form_shows_beside_the_field_and_keeps_what_was_typed(
    entries: list[Suppression], admin_client: Client
) -> None:
    typed = {"address": "not-an-address", "note": "asked us on the phone"}
    page = admin_client.post(ADD, typed)
    assert page.status_code == 400
    form = page.content.decode().split('id="suppression-add"')[1].split("</form>")[0]
    assert "Enter a valid email address." in form and 'aria-invalid="true"' in form
    assert 'value="not-an-address"' in form and 'value="asked us on the phone"' in form
    assert "former.ravi.iyer@soylent.example" in page.content.decode()  # the list is still there
    again = admin_client.post(ADD, {"address": "Full@Prospect.test", "note": "dup"})
    form = again.content.decode().split('id="suppression-add"')[1].split("</form>")[0]
    assert "full@prospect.test is already suppressed" in form and 'value="dup"' in form
    assert Suppression.objects.count() == 3


def test_the_add_form_answers_htmx_with_the_form_alone_then_reloads_when_done(
    entries: list[Suppression], admin_client: Client
) -> None:
    bad = admin_client.post(ADD, {"address": "nope@", "note": "kept"}, HTTP_HX_REQUEST="true")
    body = bad.content.decode()
    assert bad.status_code == 200  # htmx swaps no 4xx answer
    assert body.strip().startswith('<form class="card" id="suppression-add"')
    assert "Enter a valid email address." in body and 'value="nope@"' in body
    assert 'value="kept"' in body and "<table" not in body
    assert Suppression.objects.count() == 3
    done = admin_client.post(
        ADD, {"address": "New@Prospect.test", "note": "asked"}, HTTP_HX_REQUEST="true"
    )
    assert done["HX-Refresh"] == "true"
    entry = Suppression.objects.get(address="new@prospect.test")
    assert (entry.reason, entry.detail) == ("manual", "asked")
    assert "new@prospect.test is suppressed" in admin_client.get(LIST).content.decode()


def test_the_import_reports_rows_without_an_address(
    entries: list[Suppression], admin_client: Client
) -> None:
    csv = (
        "email,note\n"
        "one@prospect.test,\n"
        ",no address here\n"  # line 3
        "\n"  # a blank line is not a row
        '"",a note\n'  # line 5
        'two@prospect.test,"two\nlines"\n'  # lines 6-7
        " ,only a note\n"  # line 8
    )
    upload = SimpleUploadedFile("list.csv", csv.encode(), content_type="text/csv")
    done = admin_client.post(
        reverse("sending:suppressions_import"), {"file": upload}, follow=True
    ).content.decode()
    assert "2 addresses added" in done
    assert "3 rows had no address and were skipped: lines 3, 5, 8." in done
    assert set(Suppression.objects.filter(reason="manual").values_list("address", flat=True)) >= {
        "one@prospect.test",
        "two@prospect.test",
    }


def test_the_count_says_how_many_match_when_the_list_is_filtered(
    entries: list[Suppression], admin_client: Client, rep_client: Client
) -> None:
    assert "3 addresses on the list." in admin_client.get(LIST).content.decode()
    one = admin_client.get(LIST, {"q": "ravi"}).content.decode()
    assert "1 of 3 addresses on the list matches." in one
    two = rep_client.get(LIST, {"q": "prospect"}).content.decode()  # address or detail
    assert "1 of 3 addresses on the list matches." in two
    none = admin_client.get(LIST, {"reason": "complaint"}).content.decode()
    assert "0 of 3 addresses on the list match." in none


def test_an_import_without_a_file_says_so_beside_the_field(
    entries: list[Suppression], admin_client: Client
) -> None:
    response = admin_client.post(reverse("sending:suppressions_import"), {})
    assert response.status_code == 400
    body = response.content.decode()
    form = body.split("Import a CSV file")[1].split("</form>")[0]
    assert "This field is required." in form
    assert "former.ravi.iyer@soylent.example" in body  # the list is still there
    assert Suppression.objects.count() == 3


def _gone_and_full(tenant: Tenant) -> None:
    """A hard bounce's suppression (gone@) and a repeated soft one's (full@), both of "Intro"."""
    when = datetime(2026, 11, 12, 9, 0, tzinfo=UTC)
    for address, is_hard, code in (("gone@x.test", True, "550 5.1.1"), ("full@x.test", False, "")):
        Suppression.objects.create(
            tenant=tenant,
            address=address,
            reason=SuppressionReason.HARD_BOUNCE if is_hard else SuppressionReason.SOFT_REPEATED,
            detail=stored(bounce_detail(hard=is_hard, code=code, when=when, subject="Intro")),
        )


@pytest.mark.parametrize(
    ("language", "hard", "soft"),
    [
        ("en", "Hard bounce", "Soft bounces repeated"),
        ("pt-br", "Devolução permanente", "Devoluções temporárias repetidas"),
    ],
)
def test_the_reason_is_said_once_per_row(
    acme: Tenant, admin_client: Client, language: str, hard: str, soft: str
) -> None:
    _gone_and_full(acme)
    page = admin_client.get(LIST, headers={"accept-language": language}).content.decode()
    rows = {
        address: row
        for address, row in re.findall(
            r'<tr id="suppression-\d+">.*?<td[^>]*>([^<]+)</td>(.*?)</tr>', page, re.S
        )
    }
    assert rows["gone@x.test"].count(hard) == 1 and "550 5.1.1" in rows["gone@x.test"]
    assert rows["full@x.test"].count(soft) == 1


@pytest.mark.parametrize(
    ("language", "query", "found"),
    [
        ("en", "hard bounce", {"gone@x.test"}),
        ("en", "Intro", {"gone@x.test", "full@x.test"}),
        ("en", "5.1.1", {"gone@x.test"}),
        ("en", "added by an admin", {"typed@x.test"}),
        ("pt-br", "devolução permanente", {"gone@x.test"}),
        ("pt-br", "hard bounce", {"gone@x.test"}),
        ("es", "rebotes temporales", {"full@x.test"}),
    ],
)
def test_search_matches_what_the_list_shows(
    acme: Tenant, admin_client: Client, language: str, query: str, found: set[str]
) -> None:
    _gone_and_full(acme)
    Suppression.objects.create(tenant=acme, address="typed@x.test", reason=SuppressionReason.MANUAL)
    page = admin_client.get(
        LIST, {"q": query}, headers={"accept-language": language}
    ).content.decode()
    shown = set(re.findall(r'<tr id="suppression-\d+">.*?<td[^>]*>([^<]+)</td>', page, re.S))
    assert shown == found


def test_search_finds_entries_by_who_added_them(
    acme: Tenant, admin_user: User, admin_client: Client
) -> None:
    User.objects.filter(pk=admin_user.pk).update(first_name="Ada", last_name="Admin")
    suppression_add(tenant=acme, by=admin_user, address="asked@prospect.test")
    Suppression.objects.create(tenant=acme, address="other@x.test", reason=SuppressionReason.MANUAL)
    page = admin_client.get(LIST).content.decode()
    assert "Ada Admin" in page  # the list names who added it ...
    for query in ("Ada Admin", "ada admin", "Ada", admin_user.email):  # ... and finds by it
        page = admin_client.get(LIST, {"q": query}).content.decode()
        shown = set(re.findall(r'<tr id="suppression-\d+">.*?<td[^>]*>([^<]+)</td>', page, re.S))
        assert shown == {"asked@prospect.test"}, query

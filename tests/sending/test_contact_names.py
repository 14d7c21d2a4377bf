"""A contact's names: saving the contact form never blanks what it leaves empty, and names
written as MIME encoded words (RFC 2047) are stored as the words they stand for."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from sending import services
from sending.models import Contact

pytestmark = pytest.mark.django_db(transaction=True)  # request paths: autocommit, as served


def _ana(acme: Tenant, rep_user: User) -> Contact:
    return Contact.objects.create(
        tenant=acme,
        owner=rep_user,
        email="ana@prospect.test",
        first_name="Ana",
        last_name="Souza",
        company="Acme",
    )


def test_saving_a_contact_with_empty_names_keeps_the_names_it_has(
    rep_client: Client, acme: Tenant, rep_user: User
) -> None:
    ana = _ana(acme, rep_user)
    response = rep_client.post(
        reverse("sending:contacts"),
        {"email": "Ana@Prospect.test", "first_name": "", "last_name": "", "company": ""},
    )
    assert response.status_code == 302
    ana.refresh_from_db()
    assert (ana.first_name, ana.last_name, ana.company) == ("Ana", "Souza", "Acme")
    # What the form does fill in still replaces what was there.
    rep_client.post(
        reverse("sending:contacts"),
        {"email": "ana@prospect.test", "first_name": "", "last_name": "Lima", "company": ""},
    )
    ana.refresh_from_db()
    assert (ana.first_name, ana.last_name, ana.company) == ("Ana", "Lima", "Acme")
    assert Contact.objects.filter(email="ana@prospect.test").count() == 1


def test_encoded_names_are_stored_decoded(rep_client: Client, acme: Tenant, rep_user: User) -> None:
    rep_client.post(
        reverse("sending:contacts"),
        {
            "email": "jose@prospect.test",
            "first_name": "=?utf-8?q?Jos=C3=A9?=",
            "last_name": "=?iso-8859-1?q?Mu=F1oz?=",
            "company": "=?utf-8?b?QcOnbyBMdGRh?=",
        },
    )
    jose = Contact.objects.get(email="jose@prospect.test")
    assert (jose.first_name, jose.last_name, jose.company) == ("José", "Muñoz", "Aço Ltda")
    # Enrolment paths go through ``contact_ensure``, which decodes as well.
    lee = services.contact_ensure(
        tenant=acme, owner=rep_user, email="lee@prospect.test", first_name="=?utf-8?q?L=C3=A9a?="
    )
    lee.refresh_from_db()
    assert lee.first_name == "Léa"
    # Text that only looks encoded is kept as it was written.
    kept = services.contact_ensure(
        tenant=acme, owner=rep_user, email="odd@prospect.test", first_name="=?bad?q?x?="
    )
    assert kept.first_name == "=?bad?q?x?="

"""Sending in its users' languages: the pages, their messages and the words a send writes
(why a message waits or failed) read in Brazilian Portuguese and Spanish, dates included."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.models import Tenant, User
from channels.models import BlockedDomain, Identity
from msc_admin import stored
from sending import pipeline, services
from sending.models import (
    Campaign,
    CampaignStep,
    Contact,
    ContactImport,
    Enrollment,
    ImportStatus,
    Message,
    MessageStatus,
    Suppression,
    SuppressionReason,
    Template,
)
from sending.services import Draft, contacts
from tests.mailservers import SmtpServer
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db

LATER = datetime(2030, 3, 15, 10, 0, tzinfo=UTC)  # TIME_ZONE is UTC in the tests
# The same moment as each language writes DATETIME_FORMAT.
LATER_IN = {"pt-br": "15 de mar. de 2030, 10:00", "es": "15 de mar. de 2030, 10:00"}


def _main(response: Any) -> str:
    """The page's own content (the layout around it belongs to the project templates)."""
    body = response.content.decode()
    assert response.status_code == 200, body[:500]
    return body[body.index('<main id="main"') : body.index("</main>")]


def _get(client: Client, url: str, language: str) -> str:
    return _main(client.get(url, headers={"accept-language": language}))


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("pt-br", ["Limites de envio", "Agendados", "Agendado", "Previsto:", "Na fila"]),
        ("es", ["Límites de envío", "Programados", "Programado", "Previsto:", "En cola"]),
    ],
)
def test_the_outbox_reads_in_the_visitors_language_with_its_dates(
    rep_client: Client,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    language: str,
    words: list[str],
) -> None:
    to = "later@prospect.test"
    draft = Draft(to_email=to, subject="Hi", body="Hi", identity=rep_identity, send_at=LATER)
    scheduled = services.message_create(tenant=acme, sender=rep_user, draft=draft)
    assert Message.objects.get(pk=scheduled.pk).status == MessageStatus.SCHEDULED
    page = _get(rep_client, reverse("sending:outbox_folder", args=["scheduled"]), language)
    for word in words:
        assert word in page
    assert LATER_IN[language] in page
    for english in ("Sending limits", "Everything you send", "Expected:", "Scheduled", "March"):
        assert english not in page
    # The rep's home tile says the same of their queue.
    tile = _get(rep_client, reverse("home"), language)
    tile = tile[tile.index('id="tile-queue"') :]
    tile = tile[: tile.index("</section>")]
    assert words[2].lower() in tile and LATER_IN[language] in tile
    assert "Your queue" not in tile and "</strong> scheduled" not in tile


@pytest.mark.parametrize(
    ("language", "retried", "unknown"),
    [
        ("pt-br", "Nova tentativa solicitada.", "resultado desconhecido"),
        ("es", "Reintento solicitado.", "resultado desconocido"),
    ],
)
def test_a_reason_stored_in_english_reads_in_the_visitors_language(
    rep_client: Client,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    language: str,
    retried: str,
    unknown: str,
) -> None:
    """``status_detail`` keeps fixed sentences in English (workers write them, and code compares
    them); the Outbox shows them in the reader's language."""
    failed = queue_message(acme, rep_user, rep_identity, to="again@prospect.test")
    Message.objects.filter(pk=failed.pk).update(status=MessageStatus.FAILED)
    services.message_retry(message=Message.objects.get(pk=failed.pk))
    assert Message.objects.get(pk=failed.pk).status_detail == "Retry requested."
    other = queue_message(acme, rep_user, rep_identity, to="unsure@prospect.test")
    Message.objects.filter(pk=other.pk).update(status=MessageStatus.FAILED, uncertain=True)
    queued = _get(rep_client, reverse("sending:outbox"), language)
    assert retried in queued and "Retry requested." not in queued
    failed_page = _get(rep_client, reverse("sending:outbox_folder", args=["failed"]), language)
    assert unknown in failed_page and "outcome unknown" not in failed_page


@pytest.mark.parametrize(
    ("language", "words", "english"),
    [
        (
            "pt-br",
            ["Etapas", "Rascunho", "3 dias", "Não iniciada", "Inscrever pessoas", "Espera (dias)"],
            ["Steps", "Draft", "3 days", "Not started", "Enrol people", "Wait (days)"],
        ),
        (
            "es",
            ["Pasos", "Borrador", "3 días", "Sin empezar", "Inscribir personas", "Espera (días)"],
            ["Steps", "Draft", "3 days", "Not started", "Enrol people", "Wait (days)"],
        ),
    ],
)
def test_a_campaign_page_reads_in_the_visitors_language(
    rep_client: Client,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    language: str,
    words: list[str],
    english: list[str],
) -> None:
    template = Template.objects.create(
        tenant=acme, owner=rep_user, name="Intro", subject="Hi", body="Hi {{first_name|there}}"
    )
    campaign = Campaign.objects.create(
        tenant=acme, owner=rep_user, name="Spring", identity=rep_identity
    )
    CampaignStep.objects.create(campaign=campaign, position=1, template=template, delay_days=3)
    person = Contact.objects.create(tenant=acme, owner=rep_user, email="pat@prospect.test")
    Enrollment.objects.create(tenant=acme, campaign=campaign, contact=person)
    page = _get(rep_client, reverse("sending:campaign", args=[campaign.pk]), language)
    for word in words:
        assert word in page
    for word in english:
        assert word not in page


@pytest.mark.parametrize(
    ("language", "count", "reason"),
    [
        ("pt-br", "2 endereços na lista.", "Adicionado por um administrador"),
        ("es", "2 direcciones en la lista.", "Añadido por un administrador"),
    ],
)
def test_the_suppression_list_counts_in_the_visitors_language(
    admin_client: Client, acme: Tenant, language: str, count: str, reason: str
) -> None:
    for address in ("one@prospect.test", "two@prospect.test"):
        Suppression.objects.create(tenant=acme, address=address, reason=SuppressionReason.MANUAL)
    page = _get(admin_client, reverse("sending:suppressions"), language)
    assert count in page and reason in page
    assert "addresses on the list" not in page and "Added by an admin" not in page


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("language", "said"),
    [
        ("pt-br", "E-mail para later@prospect.test agendado para {when}."),
        ("es", "Correo a later@prospect.test programado para el {when}."),
    ],
)
def test_composing_confirms_in_the_visitors_language(
    rep_client: Client, rep_user: User, rep_identity: Identity, language: str, said: str
) -> None:
    response = rep_client.post(
        reverse("sending:compose"),
        {
            "identity": rep_identity.pk,
            "to": "later@prospect.test",
            "subject": "Hi",
            "body": "Hi",
            "send_at": "2030-03-15T10:00",
            "action": "send",
        },
        headers={"accept-language": language},
        follow=True,
    )
    message = Message.objects.get(sender=rep_user, to_email="later@prospect.test")
    assert message.status == MessageStatus.SCHEDULED and message.scheduled_at == LATER
    assert said.format(when=LATER_IN[language]) in _main(response)


@pytest.mark.parametrize(
    ("language", "said"),
    [
        ("pt-br", "Não enviado: rival.test está na lista de domínios bloqueados da sua equipe."),
        ("es", "No enviado: rival.test está en la lista de dominios bloqueados de tu equipo."),
        ("", "Not sent: rival.test is on your team's list of blocked domains."),
    ],
)
def test_a_send_writes_why_in_its_senders_language(
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    relay: SmtpServer,
    language: str,
    said: str,
) -> None:
    """The worker has no visitor: what it writes is a sentence in no language
    (``msc_admin.stored``), which the sender reads in their own (``User.language``; the
    product's when they left it to their browser)."""
    User.objects.filter(pk=rep_user.pk).update(language=language)
    before = translation.get_language()
    message = queue_message(acme, rep_user, rep_identity, to="pat@rival.test")
    BlockedDomain.objects.create(tenant=acme, domain="rival.test")
    assert pipeline.send_message(message.pk) == "failed"
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED and stored.is_stored(message.status_detail)
    with translation.override(language or "en"):
        assert message.detail_text == said
    assert relay.received.messages == []
    # The worker's own language is as it was: the next send is in its own sender's.
    assert translation.get_language() == before


@pytest.mark.parametrize(
    ("language", "said"),
    [
        ("es", "“not-an-email” no es una dirección de correo válida."),
        ("pt-br", "“not-an-email” não é um endereço de e-mail válido."),
        ("", "“not-an-email” is not a valid email address."),
    ],
)
def test_an_imports_row_errors_are_written_in_the_uploaders_language(
    acme: Tenant, rep_user: User, language: str, said: str
) -> None:
    User.objects.filter(pk=rep_user.pk).update(language=language)
    rep_user.refresh_from_db()
    raw = b"email,first_name\na@x.test,Ann\nnot-an-email,Bo\n"
    job = contacts.import_start(tenant=acme, user=rep_user, file_name="leads.csv", raw=raw)
    contacts.import_run(import_id=job.pk)  # as the worker does, with no visitor's language
    job = ContactImport.objects.get(pk=job.pk)
    assert job.status == ImportStatus.DONE and job.created_count == 1
    assert job.errors == [{"row": 3, "message": said}]


@pytest.mark.parametrize(
    ("language", "refused"),
    [
        ("pt-br", "O servidor de destino o recusou: “550 5.7.1 Message rejected as spam”"),
        ("es", "El servidor de destino lo rechazó: “550 5.7.1 Message rejected as spam”"),
    ],
)
def test_a_refusal_reads_as_a_sentence_with_the_servers_words_as_evidence(
    rep_client: Client,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    language: str,
    refused: str,
) -> None:
    """A failed email's status: a sentence in the reader's language, the server's words quoted
    as said, for a refusal stored as a sentence and for one stored as bare words before."""
    words = "550 5.7.1 Message rejected as spam"
    now_stored = queue_message(acme, rep_user, rep_identity, to="new@prospect.test")
    before = queue_message(acme, rep_user, rep_identity, to="old@prospect.test")
    Message.objects.filter(pk=now_stored.pk).update(
        status=MessageStatus.FAILED,
        status_detail=stored.stored(stored.sentence(pipeline.REFUSED, words=words)),
    )
    Message.objects.filter(pk=before.pk).update(status=MessageStatus.FAILED, status_detail=words)
    page = _get(rep_client, reverse("sending:outbox_folder", args=["failed"]), language)
    assert page.count(refused) == 2
    assert "The receiving server refused it" not in page

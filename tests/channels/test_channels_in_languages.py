"""Delivery channels in Brazilian Portuguese and Spanish: the pages, their messages and form
errors, dates and numbers in the reader's format, and the identity email in the language of the
person who added the address (their own choice, else their browser's)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.models import Tenant, User
from channels import services
from channels.models import ChannelAuditEvent
from staff import services as staff_services
from tests.channels.conftest import reauthenticate
from tests.channels.test_channel_pages import SMTP_POST

# Request paths: run as Django serves them, without a transaction around the request.
pytestmark = pytest.mark.django_db(transaction=True)

WORDS = {
    "pt-br": {
        "overview": ["Canais de envio", "Identidades de envio", "Qual canal envia o quê"],
        "team": ["Configurações da equipe", "Tamanho do lote", "Domínios de destinatários"],
        "audit": "26 de nov. de 2026",
        "limit": "Mais que o limite por hora (1.000): um minuto não pode enviar mais",
    },
    "es": {
        "overview": ["Canales de envío", "Identidades de envío", "Qué canal envía qué"],
        "team": ["Configuración del equipo", "Tamaño del lote", "Dominios de destinatarios"],
        "audit": "26 de nov. de 2026",
        # Spanish groups thousands with a no-break space (Django's es formats).
        "limit": "Más que el límite por hora (1\u00a0000): un minuto no puede enviar más",
    },
}
ENGLISH = {
    "overview": ["Delivery channels", "Which channel sends what", "Add an identity", "From name"],
    "team": ["Team settings", "Batch size", "Blocked recipient domains", "Save throttling"],
}


def _in(client: Client, language: str) -> Client:
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = language
    return client


def _main(page: bytes) -> str:
    """The page's own content: the layout around it (templates/) is translated elsewhere."""
    found = re.search(r"<main\b.*?</main>", page.decode(), re.S)
    assert found, page[:300]
    return found.group(0)


@pytest.mark.parametrize("language", ["pt-br", "es"])
def test_a_rep_reads_delivery_channels_in_their_language(
    rep_client: Client, rep_user: User, language: str
) -> None:
    client = _in(rep_client, language)
    response = client.get(reverse("channels:overview"))
    assert response.status_code == 200
    # The page in its sections: My channel, then Identities (with which channel sends what).
    identities = client.get(reverse("channels:overview") + "?section=identities")
    page = _main(response.content) + _main(identities.content)
    for words in WORDS[language]["overview"]:
        assert words in page
    for words in ENGLISH["overview"]:
        assert words not in page


@pytest.mark.parametrize("language", ["pt-br", "es"])
def test_an_admin_reads_team_settings_and_the_audit_log_in_their_language(
    admin_client: Client, admin_user: User, acme: Tenant, language: str
) -> None:
    event = ChannelAuditEvent.objects.create(
        tenant=acme, actor=admin_user, subject="blocked domain rival.test", action="created"
    )
    when = datetime(2026, 11, 26, 9, 24, tzinfo=UTC)
    ChannelAuditEvent.objects.filter(pk=event.pk).update(created_at=when)
    client = _in(admin_client, language)

    team = _main(client.get(reverse("channels:team")).content)
    audit = _main(client.get(reverse("channels:audit")).content)

    for words in WORDS[language]["team"]:
        assert words in team
    for words in ENGLISH["team"]:
        assert words not in team
    # The date as the reader writes it, not "Nov 26, 2026, 09:24".
    assert WORDS[language]["audit"] in audit.lower()
    assert "Nov 26, 2026" not in audit


@pytest.mark.parametrize("language", ["pt-br", "es"])
def test_a_form_error_is_in_the_readers_language_with_their_number_format(
    rep_client: Client, rep_user: User, language: str
) -> None:
    reauthenticate(rep_client)
    limits = {"per_minute": "2000", "per_hour": "1000", "per_day": ""}

    response = _in(rep_client, language).post(
        reverse("channels:smtp_edit"), {**SMTP_POST, **limits}
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert WORDS[language]["limit"] in page
    assert "More than the limit" not in page
    assert not rep_user.channels.exists()  # nothing saved, what was typed is shown again
    assert 'value="2000"' in page


def test_the_identity_email_is_in_the_language_of_the_person_who_added_it(
    rep_client: Client, rep_user: User
) -> None:
    """Their own choice wins over the browser's; with none, the browser's language is used."""
    rep_user.language = "es"
    rep_user.save(update_fields=["language"])
    client = _in(rep_client, "pt-br")

    client.post(reverse("channels:identity_add"), {"email": "ventas@acme.test", "name": "Rep"})
    rep_user.language = ""
    rep_user.save(update_fields=["language"])
    client.post(reverse("channels:identity_add"), {"email": "vendas@acme.test", "name": "Rep"})

    assert (
        rep_user.identities.filter(email__in=["ventas@acme.test", "vendas@acme.test"]).count() == 2
    )
    spanish, portuguese = mail.outbox
    assert spanish.to == ["ventas@acme.test"]
    assert spanish.subject == "Confirma tu dirección de envío en msc-admin"
    assert "Hola, Rep:" in spanish.body and "el enlace expira en 3 días" in spanish.body
    assert portuguese.to == ["vendas@acme.test"]
    assert portuguese.subject == "Confirme seu endereço de envio no msc-admin"
    assert "Olá, Rep," in portuguese.body and "o link expira em 3 dias" in portuguese.body
    for message in mail.outbox:
        assert "Someone (hopefully you)" not in message.body


@pytest.mark.parametrize("language", ["pt-br", "es"])
def test_an_admin_who_used_msc_servers_in_their_language_never_reads_msc_once_moved_off(
    globex: Tenant, outsider_user: User, staff_user: User, language: str
) -> None:
    """What a Portuguese or Spanish admin's requests stored about the MSC servers is English
    (the audit log's subjects), so the move off legacy rewords it like the rest."""
    with translation.override(language):  # as during their requests
        first = services.channel_select_legacy(
            tenant=globex, actor=outsider_user, owner=outsider_user
        )
        services.channel_delete(channel=first, actor=outsider_user)
        services.channel_select_legacy(tenant=globex, actor=outsider_user, owner=outsider_user)
    staff_services.tenant_unflag_legacy(actor=staff_user, tenant=globex)
    client = _in(Client(), language)
    client.force_login(outsider_user)

    assert ChannelAuditEvent.objects.filter(tenant=globex, action="removed").exists()
    for url in ("channels:overview", "channels:team", "channels:audit"):
        page = client.get(reverse(url)).content.decode()
        assert not re.findall(r"\bMSC\b", page), url
        assert "msc server" not in page.lower(), url

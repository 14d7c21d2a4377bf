"""Bounce tracking and the analytics pages in Brazilian Portuguese and Spanish: the pages, the
reason labels, the evidence sentence (the server's words quoted as they came), dates in the
reader's format, the CSV headers, and the spike notices each admin gets in their own language."""

from __future__ import annotations

import html
import itertools

import pytest
from django.core import mail
from django.test import Client, TestCase
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format

import bounceparse
from accounts.models import Role, Tenant, User
from analytics.models import FeedKind, Notification
from analytics.templatetags import bounce_reasons
from bounceparse import labels
from bounces import explain, services
from bounces.models import BounceEvent, BounceSpike
from channels.models import Channel, Identity
from msc_admin.stored import read
from reports.charts import _day
from sending import pipeline
from sending.models import Message, MessageStatus
from tests.bounces.conftest import dsn_for, mark_sent
from tests.factories import MembershipFactory
from tests.sending.conftest import queue_message

DIAGNOSTIC = "550 <{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table"

# What each language says, and the English it replaces.
SAYS = {
    "pt-br": {
        "detail": ["Devolução para gone@prospect.test", "A caixa de correio não existe"],
        "evidence": "Permanente: o servidor de destino respondeu 550 'user unknown (at RCPT)' no "
        "relatório de entrega.",
        "list": ["Cada devolução encontrada", "Sem correspondência"],
        "overview": ["Análises de devoluções", "Principais motivos", "Enviados e devolvidos"],
        "breakdown": ["Por que e onde os e-mails foram devolvidos", "Parcela das devoluções"],
        "feed": ["Atividade ao vivo", "Devolvido"],
        "csv": "motivo,classe,devolucoes,parcela_das_devolucoes_pct,motivo_descricao",
    },
    "es": {
        "detail": ["Rebote para gone@prospect.test", "El buzón no existe"],
        "evidence": "Permanente: el servidor de destino respondió 550 'user unknown (at RCPT)' en "
        "el informe de entrega.",
        "list": ["Cada rebote encontrado", "Sin coincidencia"],
        "overview": ["Analíticas de rebotes", "Motivos principales", "Enviados y rebotados"],
        "breakdown": ["Por qué y dónde rebotó el correo", "Proporción de rebotes"],
        "feed": ["Actividad en vivo", "Rebotado"],
        "csv": "motivo,clase,rebotes,proporcion_de_rebotes_pct,motivo_descripcion",
    },
}
ENGLISH = {
    "detail": ["Bounce for ", "Mailbox does not exist", "Classified by", "Server said"],
    "evidence": "the receiving server said",
    "list": ["Every bounce found", "Not matched"],
    "overview": ["Bounce analytics", "Top reasons", "Sent and bounced per day", " sent and "],
    "breakdown": ["Why and where mail bounced", "Share of bounces", "Download CSV"],
    "feed": ["Bounces, failures, sends", "newest first"],  # the menu is not ours: "Live feed"
}


@pytest.fixture
def bounced(
    acme: Tenant, rep_user: User, rep_identity: Identity, team_channel: Channel
) -> BounceEvent:
    """A message the rep really sent, and its hard bounce read from a real DSN."""
    message = queue_message(acme, rep_user, rep_identity, to="gone@prospect.test")
    # Committed at once (no transaction around the test): the eager worker may have sent it.
    pipeline.send_message(message.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    raw = dsn_for(message, status="5.0.0", diagnostic=DIAGNOSTIC, own_id="<lang@mx>")
    (event,) = services.ingest(tenant=acme, raw=raw).created
    assert event.reason == "userunknown" and event.hard
    assert event.evidence["rule"] == "phrase"  # decided by the server's own words
    return event


def _client(user: User, language: str) -> Client:
    client = Client(headers={"accept-language": language})
    client.force_login(user)
    return client


def _page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    assert response["Content-Language"] in SAYS
    return html.unescape(response.content.decode())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("language", list(SAYS))
def test_bounce_pages_read_in_the_browsers_language(
    language: str, bounced: BounceEvent, admin_user: User, relay
) -> None:
    says, client = SAYS[language], _client(admin_user, language)

    page = _page(client, reverse("bounces:detail", args=[bounced.pk]))
    for words in says["detail"]:
        assert words in page
    # The evidence: a sentence of the reader's language, the server's words as they came.
    assert says["evidence"] in page
    for english in [*ENGLISH["detail"], ENGLISH["evidence"]]:
        assert english not in page
    # The time it came, in the reader's format (month names and order of their language).
    received = timezone.localtime(bounced.received_at)
    with translation.override(language):
        local = date_format(received, "DATETIME_FORMAT")
    with translation.override("en"):
        assert date_format(received, "DATETIME_FORMAT") != local
    assert local in page

    page = _page(client, reverse("bounces:list") + "?show=matched")
    for words in says["list"]:
        assert words in page
    for english in ENGLISH["list"]:
        assert english not in page


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("language", list(SAYS))
def test_analytics_pages_and_csv_read_in_the_browsers_language(
    language: str, bounced: BounceEvent, admin_user: User, relay
) -> None:
    says, client = SAYS[language], _client(admin_user, language)
    for name in ("overview", "breakdown", "feed"):
        url = reverse("analytics:live_feed" if name == "feed" else f"analytics:{name}")
        url += "" if name == "feed" else "?scope=team"
        page = _page(client, url)
        for words in says[name]:
            assert words in page, (name, words)
        for english in ENGLISH[name]:
            assert english not in page, (name, english)
    # The trend's last day, as the reader writes a day ("30 nov"), not "Nov 30".
    today = timezone.localdate()
    page = _page(client, reverse("analytics:overview") + "?scope=team")
    with translation.override(language):
        assert _day(today) in page  # "30 de nov", "30 nov"
    assert f"{today:%b} {today.day}<" not in page

    response = client.get(reverse("analytics:reason_csv") + "?scope=team")
    header, row = response.getvalue().decode().splitlines()[:2]
    assert header == says["csv"]
    assert row.startswith("userunknown,hard,1,")  # codes stay codes


@pytest.mark.django_db(transaction=True)
def test_spike_notices_reach_each_admin_in_their_own_language(
    acme: Tenant,
    admin_user: User,
    rep_user: User,
    rep_identity: Identity,
    team_channel: Channel,
    relay,
) -> None:
    User.objects.filter(pk=admin_user.pk).update(language="pt-br")
    other = MembershipFactory(tenant=acme, role=Role.ADMIN, user__email="jefe@acme.test").user
    User.objects.filter(pk=other.pk).update(language="es")
    sent: list[Message] = [
        mark_sent(queue_message(acme, rep_user, rep_identity, to=f"p{i}@prospect.test"))
        for i in range(20)
    ]
    items = [services.Incoming(dsn_for(m, own_id=f"<s{m.pk}@mx>")) for m in sent[:3]]
    with TestCase.captureOnCommitCallbacks(execute=True):  # the admins' email goes on commit
        services.ingest_many(tenant=acme, items=items)

    spike = BounceSpike.objects.get()
    with translation.override("pt-br"):
        rotulo = str(team_channel.label)  # the channel's name, in each reader's language too
    with translation.override("es"):
        etiqueta = str(team_channel.label)
    by_address = {email.to[0]: email for email in mail.outbox}
    assert sorted(by_address) == ["admin@acme.test", "jefe@acme.test"]
    portuguese, spanish = by_address["admin@acme.test"], by_address["jefe@acme.test"]
    assert portuguese.subject == f"{rotulo} pausado: 3 de 20 mensagens recentes foram devolvidas."
    assert spanish.subject == f"{etiqueta} en pausa: 3 de 20 mensajes recientes rebotaron."
    assert "Revise em http" in portuguese.body and f"/bounces/spikes/{spike.pk}/" in portuguese.body
    assert "Revísalo en " in spanish.body and f"/bounces/spikes/{spike.pk}/" in spanish.body
    told = dict(
        Notification.objects.filter(kind=FeedKind.CHANNEL).values_list("user__email", "text")
    )
    # Each feed entry is kept as a sentence and read in its reader's language of the day.
    with translation.override("pt-br"):
        assert read(told["admin@acme.test"]) == portuguese.subject
    with translation.override("es"):
        assert read(told["jefe@acme.test"]) == spanish.subject
        assert read(told["admin@acme.test"]) == spanish.subject  # had she switched to Spanish


def test_every_reason_label_of_the_parser_has_a_translation() -> None:
    assert set(bounce_reasons.LABELS) == set(labels.LABELS)
    for code, english in labels.LABELS.items():
        with translation.override("en"):
            assert str(bounce_reasons.LABELS[code]) == english == bounce_reasons.words(code)
        for language in SAYS:
            with translation.override(language):
                assert bounce_reasons.words(code) not in ("", english), (language, code)


EVIDENCE = [
    bounceparse.Evidence(source, rule, detail)
    for source in ("dsn", "text", "json", "returned", "esp", "headers", "none")
    for rule, detail in (
        ("phrase", "user unknown"),
        ("status", "5.1.1"),
        ("status", "5.1.1: no such user"),
        ("vendor", "Exim"),
        ("provider", "Gmail"),
        ("command", "RCPT"),
        ("reply", "550"),
        ("action", ""),
        ("class", "5.7.0"),
        ("class", "5.6.0"),
        ("class", "5.3.0"),
        ("hint", "blocked"),
        ("none", ""),
    )
]


@pytest.mark.parametrize(
    ("evidence", "codes"), list(itertools.product(EVIDENCE, [("550", "5.1.1"), ("", "")]))
)
def test_the_translated_explanation_says_in_english_what_the_parser_says(
    evidence: bounceparse.Evidence, codes: tuple[str, str]
) -> None:
    recipient = bounceparse.Recipient(
        address="gone@prospect.test",
        status=codes[1],
        smtp_code=codes[0],
        reason="userunknown",
        hard=True,
        diagnostic="",
        evidence=evidence,
    )
    with translation.override("en"):
        assert explain.describe(recipient) == bounceparse.describe(recipient)
    with translation.override("es"):
        spanish = explain.describe(recipient)
    assert spanish.startswith("Permanente: ") and spanish != bounceparse.describe(recipient)
    if evidence.rule == "phrase":
        assert f"'{evidence.detail}'" in spanish  # the server's words, untranslated

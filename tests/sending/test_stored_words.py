"""Sentences stored when something happens (a send's status, a suppression's detail, a feed
entry) are stored as codes and values (``msc_admin.stored``) and read in each reader's language,
whoever's language was active when they were written."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from accounts.models import Tenant, User
from analytics.models import Notification
from bounces import services as bounce_services
from channels.models import Identity
from msc_admin import stored
from sending.models import Message, MessageStatus, Suppression
from sending.services import api_token_create
from sending.services.suppressions import suppression_add
from tests.bounces.conftest import dsn_for, mark_sent
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db(transaction=True)  # request paths: autocommit, as served

ADDRESS = "gone@prospect.test"
FULL = "452 4.2.2 <{rcpt}>: Mailbox full"


def _in(client: Client, user: User, language: str, url: str) -> str:
    User.objects.filter(pk=user.pk).update(language=language)
    return client.get(url).content.decode()


def test_a_hard_bounce_reads_in_each_readers_language_in_the_outbox_list_and_feed(
    acme: Tenant, rep_user: User, admin_user: User, rep_identity: Identity
) -> None:
    message = mark_sent(queue_message(acme, rep_user, rep_identity, to=ADDRESS, subject="Intro"))
    with translation.override("en"):  # written while English is active (a worker)
        bounce_services.ingest(tenant=acme, raw=dsn_for(message))
    message.refresh_from_db()
    entry = Suppression.objects.get(tenant=acme)
    feed = Notification.objects.get(user=rep_user, kind="bounced")
    # Stored as codes and values: no language in the rows.
    for text in (message.status_detail, entry.detail, feed.text):
        assert stored.is_stored(text), text
    assert stored.values_of(message.status_detail)["reason"] == {"reason": "userunknown"}
    assert stored.values_of(entry.detail)["day"]["day"].startswith(str(timezone.localdate()))

    rep, admin = Client(), Client()
    rep.force_login(rep_user)
    admin.force_login(admin_user)
    outbox = reverse("sending:outbox_folder", args=["bounced"])
    page = _in(rep, rep_user, "pt-br", outbox)
    assert "Devolução permanente (" in page
    assert "Hard bounce" not in page
    assert "Rebote permanente (" in _in(rep, rep_user, "es", outbox)
    assert "Hard bounce (Mailbox does not exist)" in _in(rep, rep_user, "en", outbox)

    suppressions = reverse("sending:suppressions")
    page = _in(admin, admin_user, "es", suppressions)
    # The reason in words once (its badge), the detail beside it without them.
    assert "Rebote permanente</span>" in page and "550 5.1.1 el" in page
    assert "Hard bounce" not in page
    page = _in(admin, admin_user, "en", suppressions)
    assert "Hard bounce</span>" in page and "550 5.1.1 on" in page

    live = reverse("analytics:live_feed")
    page = _in(rep, rep_user, "pt-br", live)
    assert f"{ADDRESS} devolveu (" in page and "bounced (" not in page
    assert f"{ADDRESS} bounced (" in _in(rep, rep_user, "en", live)


@pytest.mark.django_db  # no request: the campaign's steps are sent by hand, in one transaction
def test_a_soft_bounce_retry_takes_its_reason_from_the_bounces_code_not_its_words(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    from tests.sending.test_suppression import _two_step_campaign

    enrollment = _two_step_campaign(acme, rep_user, rep_identity)
    step = mark_sent(
        Message.objects.get(enrollment=enrollment, campaign_step__position=1),
        ago=timedelta(days=3),
    )
    with translation.override("pt-br"):  # whatever language is active when it arrives
        bounce_services.ingest(tenant=acme, raw=dsn_for(step, status="4.2.2", diagnostic=FULL))
    (retry,) = Message.objects.filter(enrollment=enrollment).pending()
    assert stored.values_of(retry.status_detail)["why"] == {"reason": "mailboxfull", "lower": True}
    with translation.override("en"):
        assert retry.detail_text.startswith("Retrying after a soft bounce (mailbox full) on ")
    with translation.override("es"):
        assert retry.detail_text.startswith("Reintento tras un rebote temporal (buzón lleno) el ")


def test_a_status_written_during_an_api_request_is_in_no_language(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    suppression_add(tenant=acme, by=rep_user, address=ADDRESS, note="")
    token = api_token_create(user=rep_user, tenant=acme, name="crm")[1]
    response = Client().post(
        reverse("sending:api_messages"),
        data=json.dumps({"to": ADDRESS, "subject": "Hi", "body": "Hello"}),
        content_type="application/json",
        headers={"authorization": f"Bearer {token}", "accept-language": "es"},
    )
    assert response.status_code == 202, response.content
    assert response.json()["detail"].startswith("No enviado:")  # the caller's language
    message = Message.objects.get(pk=response.json()["id"])
    assert message.status == MessageStatus.SUPPRESSED
    assert stored.is_stored(message.status_detail)
    with translation.override("pt-br"):  # its sender reads it in theirs
        assert message.detail_text.startswith(f"Não enviado: {ADDRESS} ")
    with translation.override("en"):
        assert message.detail_text.startswith(f"Not sent: {ADDRESS} is on your team's")


def test_rows_written_before_sentences_were_stored_still_read_as_they_were(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    message = mark_sent(queue_message(acme, rep_user, rep_identity, to=ADDRESS))
    old = "Hard bounce (Mailbox does not exist): 550 5.1.1 user unknown"
    Message.objects.filter(pk=message.pk).update(status=MessageStatus.BOUNCED, status_detail=old)
    client = Client()
    client.force_login(rep_user)
    page = _in(client, rep_user, "pt-br", reverse("sending:outbox_folder", args=["bounced"]))
    assert old in page


def test_a_templates_bounced_list_and_its_csv_read_a_stored_status_in_words(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    """A message bounced without a bounce report (refused at the hand-over) shows its status on
    the template's bounced list and in its CSV: in words, never as the stored codes."""
    from django.utils.translation import gettext_noop

    from sending.models import Template

    template = Template.objects.create(tenant=acme, owner=rep_user, name="T", subject="s", body="b")
    message = mark_sent(queue_message(acme, rep_user, rep_identity, to=ADDRESS, template=template))
    said = stored.stored(
        stored.sentence(
            gettext_noop("Hard bounce (%(reason)s): %(said)s"),
            reason=stored.Reason("userunknown"),
            said="550 5.1.1 no such user",
        )
    )
    Message.objects.filter(pk=message.pk).update(status=MessageStatus.BOUNCED, status_detail=said)
    rep = Client()
    rep.force_login(rep_user)
    key = template.pk
    page = _in(rep, rep_user, "pt-br", reverse("analytics:template_bounces", args=[key]))
    assert "Devolução permanente (" in page and "550 5.1.1 no such user" in page
    assert "&quot;t&quot;" not in page and '{"t"' not in page
    response = rep.get(reverse("analytics:template_bounces_csv", args=[key]))
    body = b"".join(response.streaming_content).decode()
    assert "550 5.1.1 no such user" in body and '"t"' not in body

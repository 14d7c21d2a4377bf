"""The people of a tenant moved off legacy are told in their own language (email and feed), as
the staff member who moved it reads the console in theirs."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client, TestCase
from django.urls import reverse

from accounts.models import Tenant, User
from analytics.models import FeedKind, Notification
from tests.staff.test_migration import legacy, pool  # noqa: F401

pytestmark = pytest.mark.django_db


def test_each_person_is_told_in_their_own_language(
    legacy: dict,  # noqa: F811
    globex: Tenant,
    staff_client: Client,
    outsider_user: User,
) -> None:
    rep = legacy["rep"]
    User.objects.filter(pk=rep.pk).update(language="pt-br")
    with TestCase.captureOnCommitCallbacks(execute=True):  # the task that tells the users
        response = staff_client.post(
            reverse("staff:tenant_legacy", args=[globex.pk]),
            {"legacy": "0"},
            follow=True,
            headers={"accept-language": "es"},
        )
    # The staff member reads Spanish.
    assert (
        "Globex salió de ToutApp heredado: 3 mensajes en cola o programados esperan un canal "
        "nuevo; 2 personas están recibiendo el aviso." in response.content.decode()
    )
    emails = {m.to[0]: m for m in mail.outbox}
    told = {n.user_id: n.text for n in Notification.objects.filter(kind=FeedKind.CHANNEL)}
    # The rep reads Portuguese: their email and their feed entry say so.
    assert emails[rep.email].subject == (
        "Sua equipe não envia mais pelos servidores legados compartilhados"
    )
    for text in (emails[rep.email].body, told[rep.pk]):
        assert text.startswith("Sua equipe não envia mais pelos servidores legados compartilhados.")
        assert "2 das suas mensagens esperam por isso." in text
    # The admin chose no language: the site's, English (not the staff member's Spanish).
    assert emails[outsider_user.email].subject == (
        "Your team no longer sends through the shared legacy servers"
    )
    assert told[outsider_user.pk].startswith("Your team no longer sends through")

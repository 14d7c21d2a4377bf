"""An undone bounce's live-feed entry says it was undone, in the reader's language."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from accounts.models import Tenant, User
from analytics.models import FeedKind, Notification
from bounces import services
from channels.models import Identity
from tests.bounces.conftest import dsn_for, mark_sent
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db(transaction=True)  # a request path: autocommit, as served


def test_an_undone_bounce_is_marked_undone_in_the_live_feed(
    acme: Tenant, rep_user: User, rep_identity: Identity, admin_client: Client, rep_client: Client
) -> None:
    sent = mark_sent(queue_message(acme, rep_user, rep_identity))
    (event,) = services.ingest(tenant=acme, raw=dsn_for(sent)).created
    (entry,) = Notification.objects.filter(user=rep_user, kind=FeedKind.BOUNCED)
    before = entry.words
    assert before.startswith("pat@prospect.test bounced")

    response = admin_client.post(reverse("bounces:undo", args=[event.pk]))
    assert response.status_code == 302
    assert not Notification.objects.filter(user=rep_user, kind=FeedKind.BOUNCED).exists()
    entry = Notification.objects.get(user=rep_user, link=f"/bounces/{event.pk}/")
    assert entry.kind == FeedKind.SENT
    assert entry.words == (
        "Not a bounce, an admin said: the email to pat@prospect.test (“Hello”) counts as sent"
        " again."
    )
    with translation.override("pt-br"):
        assert entry.words.startswith("Não era uma devolução, segundo um administrador: o email")
    page = rep_client.get(reverse("analytics:live_feed")).content.decode()
    assert "Not a bounce, an admin said: the email to pat@prospect.test" in page
    bounced = rep_client.get(reverse("analytics:live_feed") + "?kind=bounced").content.decode()
    assert "pat@prospect.test" not in bounced

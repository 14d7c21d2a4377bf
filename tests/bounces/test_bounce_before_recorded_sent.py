"""A hard bounce can arrive for a message that reached its server but is not recorded sent:
its worker is writing the outcome right now, or died after the hand-over and left it
"uncertain". The address is dead all the same: it is suppressed and the person's campaign ends,
while the message, never counted sent, keeps its state and no figure counts the bounce."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Tenant, User
from analytics.models import Rollup
from bounces import services
from channels.models import Identity
from sending.models import (
    CAMPAIGN_ENDED_BOUNCE,
    Campaign,
    CampaignStep,
    Contact,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    Suppression,
    Template,
)
from tests.bounces.conftest import dsn_for
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db(transaction=True)


def _in_campaign(acme: Tenant, rep_user: User, rep_identity: Identity) -> tuple[Message, Message]:
    template = Template.objects.create(tenant=acme, owner=rep_user, name="T", subject="s", body="b")
    campaign = Campaign.objects.create(tenant=acme, owner=rep_user, name="C", identity=rep_identity)
    step = CampaignStep.objects.create(campaign=campaign, template=template, position=1)
    enrollment = Enrollment.objects.create(
        tenant=acme,
        campaign=campaign,
        contact=Contact.objects.create(tenant=acme, owner=rep_user, email="pat@prospect.test"),
    )
    with mock.patch("msc_admin.enqueue.after_commit"):  # the worker's side is the test's
        first = queue_message(acme, rep_user, rep_identity)
        following = queue_message(acme, rep_user, rep_identity)
    Message.objects.filter(pk__in=[first.pk, following.pk]).update(
        enrollment=enrollment, campaign_step=step
    )
    first.refresh_from_db()
    following.refresh_from_db()
    return first, following


@pytest.mark.parametrize(
    "state",
    [
        {"status": MessageStatus.SENDING, "claim_token": "worker"},  # outcome being written
        {"status": MessageStatus.FAILED, "uncertain": True},  # its worker died
    ],
    ids=["being-recorded", "uncertain"],
)
def test_a_hard_bounce_of_a_handed_over_message_suppresses_and_ends_the_campaign(
    acme: Tenant, rep_user: User, rep_identity: Identity, state: dict[str, object]
) -> None:
    first, following = _in_campaign(acme, rep_user, rep_identity)
    Message.objects.filter(pk=first.pk).update(handed_over_at=timezone.now(), **state)
    (event,) = services.ingest(tenant=acme, raw=dsn_for(first)).created
    assert event.message_id == first.pk
    entry = Suppression.objects.get(tenant=acme, address="pat@prospect.test")
    assert entry.message_id == first.pk and entry.bounce_event_id == event.pk
    assert Enrollment.objects.get(pk=first.enrollment_id).status == EnrollmentStatus.ENDED
    following.refresh_from_db()
    assert following.status == MessageStatus.CANCELLED
    assert following.status_detail == CAMPAIGN_ENDED_BOUNCE
    first.refresh_from_db()
    assert first.status == state["status"]  # never counted sent: not counted bounced either
    assert (Rollup.objects.filter(tenant=acme).aggregate(n=Sum("hard"))["n"] or 0) == 0


def test_a_bounce_of_a_message_never_handed_over_changes_nothing(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    first, following = _in_campaign(acme, rep_user, rep_identity)
    Message.objects.filter(pk=first.pk).update(status=MessageStatus.FAILED, uncertain=False)
    services.ingest(tenant=acme, raw=dsn_for(first))
    assert not Suppression.objects.filter(tenant=acme).exists()
    assert Enrollment.objects.get(pk=first.enrollment_id).status == EnrollmentStatus.ACTIVE
    following.refresh_from_db()
    assert following.status == MessageStatus.QUEUED

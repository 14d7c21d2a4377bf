"""Composing many messages in one transaction (a campaign starting, people enrolled) costs no
savepoint per message, routes each sender once, and a refused message leaves the caller's
transaction usable (autocommit outside it, as Django serves requests)."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import Tenant, User
from channels.models import Identity
from sending import services
from sending.models import Campaign, CampaignStep, Contact, Message, MessageStatus, Template
from sending.services import Draft

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_campaign_starting_queues_each_person_without_a_savepoint_or_a_route_each(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    intro = Template.objects.create(
        tenant=acme, owner=rep_user, name="Intro", subject="Hi", body="Hi"
    )
    campaign = Campaign.objects.create(
        tenant=acme, owner=rep_user, name="Q4", identity=rep_identity
    )
    CampaignStep.objects.create(campaign=campaign, template=intro, position=1)
    contacts = [
        Contact.objects.create(tenant=acme, owner=rep_user, email=f"p{i}@prospect.test")
        for i in range(6)
    ]
    services.campaign_enroll(campaign=campaign, contacts=contacts)
    with mock.patch("msc_admin.enqueue.after_commit"), CaptureQueriesContext(connection) as seen:
        services.campaign_start(campaign=campaign)
    sql = [q["sql"] for q in seen.captured_queries]
    assert not [s for s in sql if s.startswith("SAVEPOINT")]
    # The team channel is looked up for the campaign's check and once for the batch, not for
    # each of the six people.
    routed = [s for s in sql if s.startswith('SELECT "delivery_channels_channel"')]
    assert len(routed) <= 2
    queued = Message.objects.filter(tenant=acme, status=MessageStatus.QUEUED)
    assert sorted(queued.values_list("to_email", flat=True)) == [c.email for c in contacts]


def test_a_refused_message_leaves_the_callers_transaction_usable(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    with mock.patch("msc_admin.enqueue.after_commit"), transaction.atomic():
        with pytest.raises(ValidationError):
            services.message_compose(
                tenant=acme,
                sender=rep_user,
                draft=Draft(
                    to_email="not an address", subject="Hi", body="Hi", identity=rep_identity
                ),
            )
        # The transaction goes on: the next message of the batch is stored.
        services.message_compose(
            tenant=acme,
            sender=rep_user,
            draft=Draft(
                to_email="ada@prospect.test", subject="Hi", body="Hi", identity=rep_identity
            ),
        )
    assert list(Message.objects.values_list("to_email", flat=True)) == ["ada@prospect.test"]

"""The team's caps by receiving domain or provider, through the pipeline against the real relay:
over a cap a message waits with the reason and when it goes, without spending a try, and mail
to other domains keeps going. Counted across the tenant's channels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import Tenant, User
from channels import providers
from channels import services as channel_services
from channels.models import Channel, DomainCap, Identity, ReceivingDomain
from sending import domainlimits, pipeline
from sending.models import DomainCapSlot, Hold, Message, MessageStatus
from tests.bounces.conftest import mark_sent
from tests.mailservers import SmtpServer
from tests.sending.conftest import RELAY_PASSWORD, queue_message, relay_config

pytestmark = pytest.mark.django_db


def _cap(tenant: Tenant, admin: User, limit: int, *, to: str, period: str = "hour") -> DomainCap:
    if to in providers.GROUPS:
        return channel_services.domain_cap_add(
            tenant=tenant, actor=admin, limit=limit, period=period, provider=to, domains=[]
        )
    return channel_services.domain_cap_add(
        tenant=tenant, actor=admin, limit=limit, period=period, provider="", domains=to.split(",")
    )


def _reload(message: Message) -> Message:
    message.refresh_from_db()
    return message


def test_over_a_cap_mail_waits_with_the_reason_and_eta_and_other_domains_keep_going(
    acme: Tenant, admin_user: User, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    cap = _cap(acme, admin_user, 2, to="google")
    gmail = [queue_message(acme, rep_user, rep_identity, to=f"g{n}@gmail.com") for n in range(3)]
    other = queue_message(acme, rep_user, rep_identity, to="pat@prospect.test")
    assert [pipeline.send_message(m.pk) for m in gmail[:2]] == ["sent", "sent"]
    assert pipeline.send_message(gmail[2].pk) == f"held:{Hold.DOMAIN_CAP}"
    assert pipeline.send_message(other.pk) == "sent"

    held = _reload(gmail[2])
    assert (held.status, held.hold, held.attempts) == (MessageStatus.QUEUED, Hold.DOMAIN_CAP, 0)
    first = min(DomainCapSlot.objects.filter(cap=cap).values_list("at", flat=True))
    frees = datetime.fromtimestamp(first + 3600, UTC)
    assert held.next_attempt_at == frees
    assert held.detail_text == (
        f"At most 2 an hour to Google mailboxes; next send at "
        f"{timezone.localtime(frees):%H:%M:%S %Z}."
    )
    assert sorted(m["to"][0] for m in relay.received.messages) == [
        "g0@gmail.com",
        "g1@gmail.com",
        "pat@prospect.test",
    ]
    # Not due before then: a tick does not hand it over.
    assert pipeline.send_message(held.pk) == "skipped"

    # An hour after the first send its slot frees and the message goes.
    DomainCapSlot.objects.filter(cap=cap).update(at=first - 3600)
    Message.objects.filter(pk=held.pk).update(next_attempt_at=timezone.now())
    assert pipeline.send_message(held.pk) == "sent"
    assert _reload(held).attempts == 1


def test_a_cap_counts_the_mail_of_every_channel_of_the_team(
    acme: Tenant,
    admin_user: User,
    rep_user: User,
    rep_identity: Identity,
    team_channel: Channel,
    relay: SmtpServer,
) -> None:
    own = channel_services.channel_save_smtp(
        tenant=acme,
        actor=rep_user,
        owner=rep_user,
        config=relay_config(relay),
        password=RELAY_PASSWORD,
        use_for_all_members=False,
    )
    _cap(acme, admin_user, 2, to="gmail.com,googlemail.com", period="day")
    first = queue_message(acme, rep_user, rep_identity, to="a@gmail.com")
    second = queue_message(acme, rep_user, rep_identity, to="b@googlemail.com")
    third = queue_message(acme, rep_user, rep_identity, to="c@gmail.com")
    Message.objects.filter(pk=first.pk).update(channel=team_channel)
    Message.objects.filter(pk__in=[second.pk, third.pk]).update(channel=own)
    assert pipeline.send_message(first.pk) == "sent"
    assert pipeline.send_message(second.pk) == "sent"
    assert pipeline.send_message(third.pk) == f"held:{Hold.DOMAIN_CAP}"
    assert _reload(third).detail_text.startswith("At most 2 a day to gmail.com, googlemail.com")
    assert {_reload(m).channel_id for m in (first, second)} == {team_channel.pk, own.pk}
    assert len(relay.received.messages) == 2


def test_a_provider_cap_covers_company_domains_whose_mx_is_the_providers(
    acme: Tenant, admin_user: User, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    ReceivingDomain.objects.create(
        domain="workspace.test", provider=providers.GOOGLE, checked_at=timezone.now()
    )
    _cap(acme, admin_user, 1, to="google")
    ann = queue_message(acme, rep_user, rep_identity, to="ann@workspace.test")
    bo = queue_message(acme, rep_user, rep_identity, to="bo@gmail.com")
    # Not classified yet: no provider's cap applies to it (it is classified in the background).
    cy = queue_message(acme, rep_user, rep_identity, to="cy@unclassified.test")
    assert pipeline.send_message(ann.pk) == "sent"
    assert pipeline.send_message(bo.pk) == f"held:{Hold.DOMAIN_CAP}"
    assert pipeline.send_message(cy.pk) == "sent"


def test_a_message_tried_again_keeps_the_slot_of_its_first_try(
    acme: Tenant, admin_user: User, rep_user: User, rep_identity: Identity
) -> None:
    cap = _cap(acme, admin_user, 1, to="prospect.test")
    first = queue_message(acme, rep_user, rep_identity, to="a@prospect.test")
    second = queue_message(acme, rep_user, rep_identity, to="b@prospect.test")
    assert domainlimits.check(first) is None
    assert domainlimits.check(first) is None  # its retry: the same slot
    assert DomainCapSlot.objects.filter(cap=cap).count() == 1
    held = domainlimits.check(second)
    assert held is not None and held.hold == Hold.DOMAIN_CAP


def test_a_new_cap_counts_the_mail_sent_before_it_and_removing_it_releases_its_holds(
    acme: Tenant, admin_user: User, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    for n in range(2):
        mark_sent(queue_message(acme, rep_user, rep_identity, to=f"s{n}@gmail.com"))
    mark_sent(
        queue_message(acme, rep_user, rep_identity, to="old@gmail.com"), ago=timedelta(hours=2)
    )
    cap = _cap(acme, admin_user, 2, to="google")
    assert DomainCapSlot.objects.filter(cap=cap).count() == 2  # the two of the last hour
    waiting = queue_message(acme, rep_user, rep_identity, to="next@gmail.com")
    assert pipeline.send_message(waiting.pk) == f"held:{Hold.DOMAIN_CAP}"
    assert _reload(waiting).next_attempt_at > timezone.now() + timedelta(minutes=50)

    channel_services.domain_cap_remove(cap=cap, actor=admin_user)
    assert _reload(waiting).next_attempt_at <= timezone.now()
    assert not DomainCapSlot.objects.exists()
    assert pipeline.send_message(waiting.pk) == "sent"

"""The suppression list: a hard bounce suppresses its address, and no send path mails it again."""

from __future__ import annotations

import json
from datetime import timedelta
from email import message_from_bytes

import pytest
from django.db.models import Sum
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from accounts.models import Tenant, User
from analytics.models import Rollup
from bounces import services as bounce_services
from bounces.models import BounceEvent
from channels.models import Identity
from msc_admin.celery import app as celery_app
from sending import pipeline
from sending.models import (
    CAMPAIGN_ENDED_SUPPRESSED,
    SOFT_BOUNCE_UNDONE,
    Campaign,
    CampaignStatus,
    CampaignStep,
    Contact,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    Suppression,
    SuppressionReason,
    Template,
)
from sending.services import api_token_create, campaign_enroll, message_retry
from tests.bounces.conftest import dsn_for, mark_sent
from tests.mailservers import SmtpServer
from tests.sending.conftest import queue_message
from tests.waiting import wait_for
from tests.workers import celery_worker, wait_until_idle

ADDRESS = "former.ravi.iyer@soylent.example"


def _subjects(relay: SmtpServer) -> list[str]:
    """What reached the relay (the first, bounced message, in tests without a transaction)."""
    return [str(message_from_bytes(m["data"])["Subject"]) for m in relay.received.messages]


def _hard_bounced(tenant: Tenant, user: User, identity: Identity) -> BounceEvent:
    """A message to ADDRESS was sent and came back: 550 5.1.1."""
    message = mark_sent(queue_message(tenant, user, identity, to=ADDRESS, subject="Intro"))
    (event,) = bounce_services.ingest(tenant=tenant, raw=dsn_for(message)).created
    return event


@pytest.mark.django_db
def test_a_hard_bounce_suppresses_its_address_with_the_evidence(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    event = _hard_bounced(acme, rep_user, rep_identity)
    entry = Suppression.objects.get(tenant=acme)
    assert entry.address == ADDRESS and entry.reason == SuppressionReason.HARD_BOUNCE
    assert entry.bounce_event_id == event.pk and entry.message_id == event.message_id
    assert entry.why.startswith("Hard bounce 550 5.1.1 on ")
    assert entry.why.endswith(", from “Intro”")
    # A second bounce of the same address keeps the first cause.
    again = mark_sent(queue_message(acme, rep_user, rep_identity, to=ADDRESS.upper()))
    bounce_services.ingest(tenant=acme, raw=dsn_for(again, own_id="<dsn-2@mx>"))
    assert list(Suppression.objects.values_list("bounce_event_id", flat=True)) == [event.pk]


@pytest.mark.django_db
def test_a_soft_bounce_does_not_suppress(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    message = mark_sent(queue_message(acme, rep_user, rep_identity, to=ADDRESS))
    full = "452 4.2.2 <{rcpt}>: Mailbox full"
    bounce_services.ingest(tenant=acme, raw=dsn_for(message, status="4.2.2", diagnostic=full))
    message.refresh_from_db()
    assert message.status == MessageStatus.BOUNCED and message.bounced_soft
    assert not Suppression.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_composing_to_a_hard_bounced_address_sends_nothing_and_says_why(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer, rep_client: Client
) -> None:
    _hard_bounced(acme, rep_user, rep_identity)
    response = rep_client.post(
        reverse("sending:compose"),
        {"identity": rep_identity.pk, "to": ADDRESS, "subject": "Again", "body": "Hi"},
        follow=True,
    )
    assert response.redirect_chain[-1][0].startswith(
        reverse("sending:outbox_folder", args=["suppressed"]) + "#message-"
    )
    message = Message.objects.get(subject="Again")
    assert message.status == MessageStatus.SUPPRESSED
    assert message.detail_text.startswith(
        f"Not sent: {ADDRESS} is on your team's suppression list (Hard bounce 550 5.1.1 on "
    )
    page = response.content.decode()
    assert "suppression list (Hard bounce 550 5.1.1 on" in page and "from “Intro”" in page
    assert f'id="message-{message.pk}"' in page
    assert _subjects(relay) == ["Intro"]


@pytest.mark.django_db(transaction=True)
def test_the_api_stores_it_as_suppressed_and_sends_nothing(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    _hard_bounced(acme, rep_user, rep_identity)
    _, token = api_token_create(tenant=acme, user=rep_user, name="Plugin")
    answer = Client().post(
        reverse("sending:api_messages"),
        json.dumps({"to": ADDRESS.title(), "subject": "API", "body": "Hi"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 202, answer.content
    assert answer.json()["status"] == "suppressed"
    assert "suppression list (Hard bounce 550 5.1.1" in answer.json()["detail"]
    assert Message.objects.get(pk=answer.json()["id"]).status == MessageStatus.SUPPRESSED
    assert _subjects(relay) == ["Intro"]


def _campaign(tenant: Tenant, user: User, identity: Identity) -> Campaign:
    template = Template.objects.create(
        tenant=tenant, owner=user, name="Intro", subject="Intro", body="Hi"
    )
    campaign = Campaign.objects.create(
        tenant=tenant, owner=user, name="Q4", identity=identity, status=CampaignStatus.ACTIVE
    )
    CampaignStep.objects.create(campaign=campaign, template=template, position=1)
    return campaign


@pytest.mark.django_db
def test_a_campaign_step_queued_before_the_bounce_is_suppressed_at_send_time(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    campaign = _campaign(acme, rep_user, rep_identity)
    contact = Contact.objects.create(tenant=acme, owner=rep_user, email=ADDRESS)
    campaign_enroll(campaign=campaign, contacts=[contact])
    step = Message.objects.get(enrollment__contact=contact)
    Message.objects.filter(pk=step.pk).update(
        status=MessageStatus.QUEUED, scheduled_at=None, next_attempt_at=step.created_at
    )
    _hard_bounced(acme, rep_user, rep_identity)
    assert pipeline.send_message(step.pk) == "suppressed"
    step.refresh_from_db()
    assert step.status == MessageStatus.SUPPRESSED and step.attempts == 0
    assert "Hard bounce 550 5.1.1" in step.detail_text
    enrollment = Enrollment.objects.get(contact=contact)
    assert enrollment.status == EnrollmentStatus.ENDED
    assert enrollment.ended_reason == CAMPAIGN_ENDED_SUPPRESSED
    assert enrollment.status_text == "Ended: the address is on the suppression list"
    assert relay.received.messages == []


@pytest.mark.django_db
def test_an_admin_taking_the_address_off_the_list_resumes_the_campaign_it_ended(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer, admin_client: Client
) -> None:
    """A new user lifted a suppression and the person stayed "Ended: the address is on the
    suppression list", and could not be enrolled again."""
    campaign = _campaign(acme, rep_user, rep_identity)
    contact = Contact.objects.create(tenant=acme, owner=rep_user, email=ADDRESS)
    campaign_enroll(campaign=campaign, contacts=[contact])
    step = Message.objects.get(enrollment__contact=contact)
    Message.objects.filter(pk=step.pk).update(
        status=MessageStatus.QUEUED, scheduled_at=None, next_attempt_at=step.created_at
    )
    _hard_bounced(acme, rep_user, rep_identity)
    assert pipeline.send_message(step.pk) == "suppressed"
    entry = Suppression.objects.get(tenant=acme, address=ADDRESS)
    admin_client.post(reverse("sending:suppressions_remove"), {"ids": [entry.pk], "confirm": "yes"})
    assert not Suppression.objects.filter(tenant=acme).exists()
    enrollment = Enrollment.objects.get(contact=contact)
    assert (enrollment.status, enrollment.ended_reason) == (EnrollmentStatus.ACTIVE, "")
    step.refresh_from_db()
    assert (step.status, step.detail_text) == (MessageStatus.QUEUED, "")
    assert pipeline.send_message(step.pk) == "sent"
    assert [m["to"] for m in relay.received.messages] == [[ADDRESS]]


@pytest.mark.django_db  # the retry asked for before the bounce is not handed over on commit
def test_a_retry_to_a_suppressed_address_is_refused_and_one_asked_before_is_suppressed(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer, rep_client: Client
) -> None:
    failed = queue_message(acme, rep_user, rep_identity, to=ADDRESS)
    earlier = queue_message(acme, rep_user, rep_identity, to=ADDRESS)
    Message.objects.filter(pk__in=[failed.pk, earlier.pk]).update(status=MessageStatus.FAILED)
    earlier.refresh_from_db()
    message_retry(message=earlier)  # asked for before the bounce: queued again
    _hard_bounced(acme, rep_user, rep_identity)
    response = rep_client.post(reverse("sending:retry", args=[failed.pk]), follow=True)
    assert f"Not retried: {ADDRESS} is on your team" in response.content.decode()
    failed.refresh_from_db()
    assert failed.status == MessageStatus.FAILED
    assert pipeline.send_message(earlier.pk) == "suppressed"
    earlier.refresh_from_db()
    assert earlier.status == MessageStatus.SUPPRESSED
    assert relay.received.messages == []


@pytest.mark.django_db(transaction=True)
def test_enrolling_a_suppressed_person_is_refused_with_the_reason(
    acme: Tenant, rep_user: User, rep_identity: Identity, rep_client: Client
) -> None:
    _hard_bounced(acme, rep_user, rep_identity)
    campaign = _campaign(acme, rep_user, rep_identity)
    response = rep_client.post(
        reverse("sending:enroll", args=[campaign.pk]),
        {"emails": f"{ADDRESS}\nnew.person@prospect.test"},
        follow=True,
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert f"Not enrolled: {ADDRESS} is suppressed (Hard bounce 550 5.1.1 on" in page
    assert "Enrolled 1 person." in page
    enrolled = Enrollment.objects.filter(campaign=campaign).values_list("contact__email", flat=True)
    assert list(enrolled) == ["new.person@prospect.test"]


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_with_a_real_worker_nothing_reaches_a_hard_bounced_address_again(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer, rep_client: Client
) -> None:
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    with celery_worker("suppression"):
        first = queue_message(acme, rep_user, rep_identity, to=ADDRESS, subject="Intro")
        wait_for(lambda: _subjects(relay) == ["Intro"], what="the first message to arrive")
        # Recorded sent, as any bounce of it finds it: the relay has it a moment before the
        # worker writes the outcome, and a bounce read in that moment is a race of its own.
        wait_for(
            lambda: Message.objects.get(pk=first.pk).status == MessageStatus.SENT,
            what="the first message to be recorded sent",
        )
        # The follow-up was written before the bounce came back, and comes due after it. (Due
        # "in a second" made this test a race on a busy machine: writing it, or reading the
        # bounce, can take longer than that.)
        later = queue_message(
            acme,
            rep_user,
            rep_identity,
            to=ADDRESS,
            subject="Follow-up",
            send_at=timezone.now() + timedelta(hours=1),
        )
        assert Message.objects.get(pk=later.pk).status == MessageStatus.SCHEDULED
        first.refresh_from_db()
        bounce_services.ingest(tenant=acme, raw=dsn_for(first))
        Message.objects.filter(pk=later.pk).update(scheduled_at=timezone.now())  # now it is due
        wait_for(
            lambda: Message.objects.get(pk=later.pk).status == MessageStatus.SUPPRESSED,
            what="the follow-up to be suppressed by the worker",
            tick=pipeline.dispatch_due,
        )
        rep_client.post(
            reverse("sending:compose"),
            {"identity": rep_identity.pk, "to": ADDRESS, "subject": "Again", "body": "Hi"},
        )
        wait_until_idle("suppression")
    assert Message.objects.get(subject="Again").status == MessageStatus.SUPPRESSED
    assert "Hard bounce 550 5.1.1" in Message.objects.get(pk=later.pk).detail_text
    assert _subjects(relay) == ["Intro"]


@pytest.mark.django_db(transaction=True)
def test_not_a_bounce_lifts_the_suppression_that_bounce_made_and_only_that_one(
    acme: Tenant, rep_user: User, rep_identity: Identity, admin_client: Client
) -> None:
    event = _hard_bounced(acme, rep_user, rep_identity)
    other = mark_sent(queue_message(acme, rep_user, rep_identity, to="gone@prospect.test"))
    bounce_services.ingest(tenant=acme, raw=dsn_for(other, own_id="<dsn-other@mx>"))
    Suppression.objects.create(tenant=acme, address="asked@x.test", reason="manual")
    response = admin_client.post(reverse("bounces:undo", args=[event.pk]))
    assert response.status_code == 302
    left = Suppression.objects.order_by("address").values_list("address", flat=True)
    assert list(left) == ["asked@x.test", "gone@prospect.test"]


@pytest.mark.django_db
def test_a_hard_bounce_reread_as_soft_lifts_its_suppression_and_back(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    from bounces import reclassify

    event = _hard_bounced(acme, rep_user, rep_identity)
    message = Message.objects.get(pk=event.message_id)
    full = "452 4.2.2 <{rcpt}>: Mailbox full"
    soft_raw = dsn_for(message, status="4.2.2", diagnostic=full)
    BounceEvent.objects.filter(pk=event.pk).update(raw=soft_raw)
    (change,) = reclassify.reclassify(event_ids=[event.pk], apply=True)
    assert change.changed and change.new is not None and not change.new.hard
    assert not Suppression.objects.exists()
    message.refresh_from_db()
    assert message.status == MessageStatus.BOUNCED and message.bounced_soft
    # Read as hard again (a later parser): suppressed again, with this bounce as evidence.
    BounceEvent.objects.filter(pk=event.pk).update(raw=dsn_for(message))
    reclassify.reclassify(event_ids=[event.pk], apply=True)
    entry = Suppression.objects.get()
    assert (entry.address, entry.bounce_event_id) == (ADDRESS, event.pk)
    assert entry.reason == SuppressionReason.HARD_BOUNCE


@pytest.mark.django_db
def test_soft_bounces_retry_the_step_until_the_third_within_seven_days(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    campaign = _campaign(acme, rep_user, rep_identity)
    template = Template.objects.create(tenant=acme, owner=rep_user, name="2", subject="2", body="")
    CampaignStep.objects.create(campaign=campaign, template=template, position=2, delay_days=3)
    contact = Contact.objects.create(tenant=acme, owner=rep_user, email=ADDRESS)
    campaign_enroll(campaign=campaign, contacts=[contact])
    enrollment = Enrollment.objects.get(contact=contact)
    full = "452 4.2.2 <{rcpt}>: Mailbox full"
    bounced = []
    for attempt in range(1, 5):
        (step,) = Message.objects.filter(enrollment=enrollment).pending()
        assert step.campaign_step.position == 1  # the same step, tried again
        if attempt > 1:  # the retry waits a day
            assert step.status == MessageStatus.SCHEDULED
            assert step.scheduled_at - timezone.now() > timedelta(hours=23)
        Message.objects.filter(pk=step.pk).update(
            status=MessageStatus.QUEUED, next_attempt_at=timezone.now()
        )
        assert pipeline.send_message(step.pk) == "sent"
        # The next step was scheduled when it was sent; the soft bounce withdraws it.
        assert Message.objects.filter(enrollment=enrollment, campaign_step__position=2).exists()
        raw = dsn_for(step, status="4.2.2", diagnostic=full, own_id=f"<soft-{attempt}@mx>")
        bounce_services.ingest(tenant=acme, raw=raw)
        step.refresh_from_db()
        assert step.status == MessageStatus.BOUNCED and step.bounced_soft
        bounced.append(step)
        enrollment.refresh_from_db()
        if attempt < 4:
            assert enrollment.status == EnrollmentStatus.ACTIVE, attempt
            assert not Suppression.objects.exists()
            assert not Message.objects.filter(campaign_step__position=2).pending().exists()
        if attempt == 2:  # the first falls out of the seven days: three more are needed
            Message.objects.filter(pk=bounced[0].pk).update(
                sent_at=timezone.now() - timedelta(days=8)
            )
    assert enrollment.status == EnrollmentStatus.ENDED
    assert enrollment.status_text == "Ended: the email bounced (soft, repeated)"
    assert not Message.objects.filter(enrollment=enrollment).pending().exists()
    entry = Suppression.objects.get()
    assert (entry.address, entry.reason) == (ADDRESS, SuppressionReason.SOFT_REPEATED)
    assert entry.message_id == bounced[-1].pk
    assert entry.why.startswith("Soft bounces repeated, the last 452 4.2.2 on ")
    # Analytics still count each as a soft bounce.
    assert Rollup.objects.aggregate(soft=Sum("soft"))["soft"] == 4


FULL = "452 4.2.2 <{rcpt}>: Mailbox full"


def _two_step_campaign(tenant: Tenant, user: User, identity: Identity) -> Enrollment:
    """ADDRESS enrolled in a campaign of two steps (the second three days after the first),
    its first step sent five minutes ago."""
    campaign = _campaign(tenant, user, identity)
    template = Template.objects.create(tenant=tenant, owner=user, name="2", subject="2", body="")
    CampaignStep.objects.create(campaign=campaign, template=template, position=2, delay_days=3)
    contact = Contact.objects.create(tenant=tenant, owner=user, email=ADDRESS)
    campaign_enroll(campaign=campaign, contacts=[contact])
    enrollment = Enrollment.objects.get(contact=contact)
    (step,) = Message.objects.filter(enrollment=enrollment)
    Message.objects.filter(pk=step.pk).update(
        status=MessageStatus.QUEUED, next_attempt_at=timezone.now()
    )
    assert pipeline.send_message(step.pk) == "sent"
    return enrollment


@pytest.mark.django_db
def test_a_soft_bounce_retry_says_why_it_waits_in_the_scheduled_folder(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer, rep_client: Client
) -> None:
    enrollment = _two_step_campaign(acme, rep_user, rep_identity)
    step = mark_sent(
        Message.objects.get(enrollment=enrollment, campaign_step__position=1),
        ago=timedelta(days=3),
    )
    bounced_at = timezone.now() - timedelta(days=2)  # a bounce never precedes its message
    bounce_services.ingest(
        tenant=acme,
        raw=dsn_for(step, status="4.2.2", diagnostic=FULL),
        received_at=bounced_at,
    )
    (retry,) = Message.objects.filter(enrollment=enrollment).pending()
    day = date_format(timezone.localtime(bounced_at), "DATE_FORMAT")  # "Nov 27, 2026"
    expected = f"Retrying after a soft bounce (mailbox full) on {day}."
    assert (retry.status, retry.detail_text) == (MessageStatus.SCHEDULED, expected)
    folder = reverse("sending:outbox_folder", args=["scheduled"])
    row = rep_client.get(folder).content.decode().split(f'id="message-{retry.pk}"')[1]
    assert expected in row.split("</tr>")[0]


@pytest.mark.django_db
def test_not_a_bounce_on_a_soft_bounce_cancels_its_retry_and_restores_the_next_step(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer, admin_user: User
) -> None:
    enrollment = _two_step_campaign(acme, rep_user, rep_identity)
    step = Message.objects.get(enrollment=enrollment, campaign_step__position=1)
    scheduled = Message.objects.get(enrollment=enrollment, campaign_step__position=2)
    assert scheduled.scheduled_at == step.sent_at + timedelta(days=3)
    (event,) = bounce_services.ingest(
        tenant=acme, raw=dsn_for(step, status="4.2.2", diagnostic=FULL)
    ).created
    (retry,) = Message.objects.filter(enrollment=enrollment).pending()
    assert retry.campaign_step.position == 1  # the next step was withdrawn for the retry

    bounce_services.undo(event=event, by=admin_user)
    step.refresh_from_db()
    retry.refresh_from_db()
    assert (step.status, step.bounced_soft) == (MessageStatus.SENT, False)
    assert (retry.status, retry.status_detail) == (MessageStatus.CANCELLED, SOFT_BOUNCE_UNDONE)
    assert "marked “not a bounce”" in retry.detail_text
    (pending,) = Message.objects.filter(enrollment=enrollment).pending()
    assert pending.campaign_step.position == 2 and pending.status == MessageStatus.SCHEDULED
    assert pending.scheduled_at == step.sent_at + timedelta(days=3)  # as the send had it
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.ACTIVE


@pytest.mark.django_db
def test_not_a_bounce_after_the_retry_went_out_changes_nothing_else(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer, admin_user: User
) -> None:
    enrollment = _two_step_campaign(acme, rep_user, rep_identity)
    step = Message.objects.get(enrollment=enrollment, campaign_step__position=1)
    (event,) = bounce_services.ingest(
        tenant=acme, raw=dsn_for(step, status="4.2.2", diagnostic=FULL)
    ).created
    (retry,) = Message.objects.filter(enrollment=enrollment).pending()
    Message.objects.filter(pk=retry.pk).update(
        status=MessageStatus.QUEUED, next_attempt_at=timezone.now()
    )
    assert pipeline.send_message(retry.pk) == "sent"  # the person moved on: step 2 scheduled
    before = sorted(Message.objects.filter(enrollment=enrollment).values_list("pk", "status"))
    bounce_services.undo(event=event, by=admin_user)
    after = dict(Message.objects.filter(enrollment=enrollment).values_list("pk", "status"))
    assert after[step.pk] == MessageStatus.SENT
    assert sorted(after.items()) == [
        (pk, MessageStatus.SENT if pk == step.pk else status) for pk, status in before
    ]


@pytest.mark.django_db
def test_a_suppression_says_its_bounces_date_as_the_ui_writes_dates(
    acme: Tenant, rep_user: User, rep_identity: Identity, rep_client: Client
) -> None:
    message = mark_sent(
        queue_message(acme, rep_user, rep_identity, to=ADDRESS, subject="Intro"),
        ago=timedelta(days=21),
    )
    bounced_at = timezone.now() - timedelta(days=20)
    bounce_services.ingest(tenant=acme, raw=dsn_for(message), received_at=bounced_at)
    entry = Suppression.objects.get(tenant=acme)
    day = date_format(timezone.localtime(bounced_at), "DATE_FORMAT")  # "Nov 9, 2026"
    assert entry.why == f"Hard bounce 550 5.1.1 on {day}, from “Intro”"
    assert entry.bounced_at == bounced_at
    # The contacts page's badge says the day of the bounce, not the day the entry was made.
    contact = Contact.objects.create(tenant=acme, owner=rep_user, email=ADDRESS)
    page = rep_client.get(reverse("sending:contacts")).content.decode()
    row = page.split(f'id="contact-{contact.pk}"')[1].split("</tr>")[0]
    assert f"suppressed: hard bounce on {day}</span>" in row
    today = date_format(timezone.localtime(), "DATE_FORMAT")
    assert today not in row


@pytest.mark.django_db
def test_undoing_the_first_of_two_hard_bounces_keeps_the_address_suppressed_by_the_second(
    acme: Tenant, rep_user: User, rep_identity: Identity, admin_user: User
) -> None:
    first = _hard_bounced(acme, rep_user, rep_identity)
    again = mark_sent(
        queue_message(acme, rep_user, rep_identity, to=ADDRESS.upper(), subject="Follow-up"),
        ago=timedelta(hours=2),
    )
    later = timezone.now() - timedelta(hours=1)
    (second,) = bounce_services.ingest(
        tenant=acme, raw=dsn_for(again, own_id="<dsn-2@mx>"), received_at=later
    ).created
    entry = Suppression.objects.get(tenant=acme)
    assert (entry.message_id, entry.bounce_event_id) == (first.message_id, first.pk)

    bounce_services.undo(event=first, by=admin_user)
    entry = Suppression.objects.get(tenant=acme)  # still suppressed, by the second bounce
    assert (entry.address, entry.reason) == (ADDRESS, SuppressionReason.HARD_BOUNCE)
    assert (entry.message_id, entry.bounce_event_id) == (again.pk, second.pk)
    assert entry.bounced_at == later
    day = date_format(timezone.localtime(later), "DATE_FORMAT")
    assert entry.why == f"Hard bounce 550 5.1.1 on {day}, from “Follow-up”"

    # Undoing the second too lifts it: no hard bounce of the address stands any more.
    bounce_services.undo(event=second, by=admin_user)
    assert not Suppression.objects.filter(tenant=acme).exists()


@pytest.mark.django_db(transaction=True)
def test_the_enrolment_checklist_marks_suppressed_people_and_disables_them(
    acme: Tenant, rep_user: User, rep_identity: Identity, rep_client: Client
) -> None:
    _hard_bounced(acme, rep_user, rep_identity)
    campaign = _campaign(acme, rep_user, rep_identity)
    ravi = Contact.objects.create(tenant=acme, owner=rep_user, email=ADDRESS.title())
    fine = Contact.objects.create(tenant=acme, owner=rep_user, email="fine@prospect.test")
    page = rep_client.get(reverse("sending:campaign", args=[campaign.pk])).content.decode()
    checklist = page.split('<div id="id_contacts">')[1].split("Or paste addresses")[0]

    def option(contact: Contact) -> tuple[str, str]:
        """The contact's checkbox and the words of its label."""
        found = checklist.split(f'name="contacts" value="{contact.pk}"')[1]
        box, label = found.split(">", 1)
        return box, label.split("</label>")[0]

    box, label = option(ravi)
    assert " disabled" in box
    assert f"{ravi.email} (suppressed: Hard bounce 550 5.1.1 on " in label
    box, label = option(fine)
    assert "disabled" not in box and label.strip() == "fine@prospect.test"
    # Ticked anyway (a stale page), the person is still refused.
    rep_client.post(reverse("sending:enroll", args=[campaign.pk]), {"contacts": [ravi.pk, fine.pk]})
    enrolled = Enrollment.objects.filter(campaign=campaign).values_list("contact__email", flat=True)
    assert list(enrolled) == ["fine@prospect.test"]

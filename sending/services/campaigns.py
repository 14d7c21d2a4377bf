"""Campaigns: create, steps, enrol, start, pause and resume, end, and each person's next step."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext

from accounts.models import Tenant, User
from channels.routing import Source, route
from msc_admin.stored import stored
from sending.models import (
    CAMPAIGN_ENDED,
    Campaign,
    CampaignStatus,
    CampaignStep,
    Contact,
    Enrollment,
    EnrollmentStatus,
    Hold,
    Message,
    MessageStatus,
)
from sending.services.messages import (
    Draft,
    enrollment_end,
    message_compose,
    one_run_per_channel,
)
from sending.services.suppressions import suppressions_for


@transaction.atomic
def campaign_create(*, tenant: Tenant, owner: User, campaign: Campaign) -> Campaign:
    """Store a new campaign (a draft) made by its form."""
    campaign.tenant, campaign.owner = tenant, owner
    campaign.save()
    return campaign


@transaction.atomic
def step_add(*, campaign: Campaign, **fields: Any) -> CampaignStep:
    """A step at the end of the campaign. Its steps are locked while it is numbered, so that two
    steps added at once never share a position."""
    last = campaign.steps.select_for_update().aggregate(m=Max("position"))["m"] or 0
    return CampaignStep.objects.create(campaign=campaign, position=last + 1, **fields)


@transaction.atomic
def step_remove(*, step: CampaignStep) -> None:
    if step.campaign.status == CampaignStatus.ENDED:
        raise ValidationError(gettext("This campaign has ended: its steps stay as they were."))
    if step.messages.exists():
        raise ValidationError(
            gettext("This step has already sent email; end the campaign instead.")
        )
    step.delete()


def _first_message(enrollment: Enrollment, *, start: datetime) -> Message | None:
    step = enrollment.campaign.steps.select_related("template").first()
    if step is None:
        return None
    return _step_message(enrollment, step, send_at=start + timedelta(days=step.delay_days))


def _step_message(enrollment: Enrollment, step: CampaignStep, *, send_at: datetime) -> Message:
    campaign = enrollment.campaign
    contact = enrollment.contact
    return message_compose(
        tenant=campaign.tenant,
        sender=campaign.owner,
        draft=Draft(
            to_email=contact.email,
            subject=step.template.subject,
            body=step.template.body,
            identity=campaign.identity,
            template=step.template,
            contact=contact,
            send_at=send_at,
        ),
        enrollment=enrollment,
        step=step,
    )


@transaction.atomic
def campaign_enroll(*, campaign: Campaign, contacts: list[Contact]) -> int:
    """Enrol contacts (each at most once). In an active campaign their first step is queued.
    A suppressed person is refused (left out; ``campaign_refused`` says why)."""
    if campaign.status == CampaignStatus.ENDED:
        raise ValidationError(gettext("This campaign has ended; start a new one."))
    added = 0
    now = timezone.now()
    refused = campaign_refused(campaign=campaign, contacts=contacts)
    with one_run_per_channel():
        for contact in contacts:
            if contact.email.lower() in refused:
                continue
            enrollment, created = Enrollment.objects.get_or_create(
                tenant=campaign.tenant, campaign=campaign, contact=contact
            )
            if not created:
                continue
            added += 1
            if campaign.status in (CampaignStatus.ACTIVE, CampaignStatus.PAUSED):
                _first_message(enrollment, start=now)
    return added


def campaign_refused(*, campaign: Campaign, contacts: list[Contact]) -> dict[str, str]:
    """Which of these people cannot be enrolled, and why: {address: the suppression's words}
    (one look-up for them all)."""
    found = suppressions_for(campaign.tenant_id, [c.email for c in contacts])
    return {address: entry.why for address, entry in found.items()}


@transaction.atomic
def campaign_start(*, campaign: Campaign) -> Campaign:
    if campaign.status != CampaignStatus.DRAFT:
        raise ValidationError(gettext("Only a draft campaign can be started."))
    if not campaign.steps.exists():
        raise ValidationError(gettext("Add at least one step before starting the campaign."))
    if campaign.identity is None:
        raise ValidationError(gettext("Choose the identity the campaign sends as."))
    where = route(user=campaign.owner, identity=campaign.identity, source=Source.WEB)
    if where.channel is None:
        raise ValidationError(where.reason)
    now = timezone.now()
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.ACTIVE, started_at=now)
    campaign.refresh_from_db()
    with one_run_per_channel():
        for enrollment in campaign.enrollments.select_related("contact", "campaign"):
            _first_message(enrollment, start=now)
    return campaign


@transaction.atomic
def campaign_set_paused(*, campaign: Campaign, paused: bool) -> Campaign:
    """Pausing holds its queued mail (nothing is lost); resuming releases it."""
    source, target = (
        (CampaignStatus.ACTIVE, CampaignStatus.PAUSED)
        if paused
        else (CampaignStatus.PAUSED, CampaignStatus.ACTIVE)
    )
    if not Campaign.objects.filter(pk=campaign.pk, status=source).update(status=target):
        raise ValidationError(
            gettext("Only a paused campaign can be resumed.")
            if not paused
            else gettext("Only an active campaign can be paused.")
        )
    if not paused:
        now = timezone.now()
        Message.objects.filter(
            enrollment__campaign=campaign, status=MessageStatus.QUEUED, hold=Hold.PAUSED
        ).update(hold=Hold.NONE, status_detail="", next_attempt_at=now, dispatched_at=None)
    campaign.refresh_from_db()
    return campaign


@transaction.atomic
def campaign_end(*, campaign: Campaign) -> Campaign:
    if campaign.status == CampaignStatus.ENDED:
        return campaign
    now = timezone.now()
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.ENDED, ended_at=now)
    for enrollment_id in campaign.enrollments.filter(status=EnrollmentStatus.ACTIVE).values_list(
        "pk", flat=True
    ):
        enrollment_end(enrollment_id=enrollment_id, reason=CAMPAIGN_ENDED)
    campaign.refresh_from_db()
    return campaign


def campaign_advance(*, message: Message, sent_at: datetime) -> None:
    """After a campaign email is sent: schedule the person's next step, or finish them. Runs in
    the transaction that records the send."""
    if message.enrollment_id is None or message.campaign_step is None:
        return
    enrollment = (
        Enrollment.objects.select_related("campaign__owner", "campaign__identity", "contact")
        .filter(pk=message.enrollment_id, status=EnrollmentStatus.ACTIVE)
        .first()
    )
    if enrollment is None:
        return
    step = (
        enrollment.campaign.steps.select_related("template")
        .filter(position__gt=message.campaign_step.position)
        .first()
    )
    if step is None:
        Enrollment.objects.filter(pk=enrollment.pk).update(
            status=EnrollmentStatus.FINISHED, ended_at=sent_at
        )
        return
    _step_message(enrollment, step, send_at=sent_at + timedelta(days=step.delay_days))


def campaign_retry_steps(
    *, steps: list[tuple[int, int]], at: datetime, why: Mapping[tuple[int, int], str] | None = None
) -> int:
    """Soft bounces: each (enrolment, step) is tried again at ``at``. The person's mail not yet
    sent (the next step ``campaign_advance`` scheduled) is withdrawn, as it follows the step
    again once that is sent. A person who has moved on (a later step went out) or whose
    campaign is over is left alone. ``why`` says, for a step, why it waits (the Outbox shows
    it). Runs in the transaction that records the bounces. Returns how many steps are
    retried."""
    retried = 0
    for enrollment_id, step_id in steps:
        enrollment = (
            Enrollment.objects.select_related("campaign__owner", "campaign__identity", "contact")
            .filter(pk=enrollment_id, status=EnrollmentStatus.ACTIVE)
            .exclude(campaign__status=CampaignStatus.ENDED)
            .first()
        )
        step = CampaignStep.objects.select_related("template").filter(pk=step_id).first()
        if enrollment is None or step is None:
            continue
        later = Message.objects.filter(
            enrollment_id=enrollment_id, campaign_step__position__gt=step.position
        )
        if later.exclude(status__in=[MessageStatus.SCHEDULED, MessageStatus.QUEUED]).exists():
            continue
        Message.objects.filter(enrollment_id=enrollment_id).pending().delete()
        retry = _step_message(enrollment, step, send_at=at)
        if text := (why or {}).get((enrollment_id, step_id)):
            Message.objects.filter(pk=retry.pk, status=MessageStatus.SCHEDULED).update(
                status_detail=stored(text)
            )
        retried += 1
    return retried

"""Campaigns: ordered steps (template + delay), enrolment, start, pause, resume, end."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext, gettext_lazy, ngettext
from django.views.decorators.http import require_http_methods, require_POST

from accounts.access import TenantRequest, tenant_member_required
from sending import services
from sending.access import campaign_for_user, team_scope
from sending.forms import CampaignForm, EnrollForm, StepForm
from sending.models import Campaign, CampaignStatus, EnrollmentStatus, MessageStatus
from sending.services.suppressions import suppressions_for


@require_http_methods(["GET", "POST"])
@tenant_member_required
def campaign_list(request: TenantRequest) -> HttpResponse:
    form = CampaignForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        campaign = services.campaign_create(
            tenant=request.tenant, owner=request.user, campaign=form.save(commit=False)
        )
        messages.success(request, gettext("Campaign created: add its steps, then enrol people."))
        return redirect("sending:campaign", pk=campaign.pk)
    campaigns = (
        Campaign.objects.for_tenant(request.tenant)
        .visible_to(request.user, team=team_scope(request))
        .select_related("owner")
        .annotate(
            steps_count=Count("steps", distinct=True), people=Count("enrollments", distinct=True)
        )
    )
    return render(
        request,
        "sending/campaigns.html",
        {"form": form, "campaigns": campaigns, "team": team_scope(request)},
        status=400 if form.errors else 200,
    )


def _detail(request: TenantRequest, campaign: Campaign, **forms: object) -> dict[str, object]:
    steps = campaign.steps.select_related("template").annotate(
        # Handed over, whatever became of it since: a bounced email was sent too (as the
        # campaign analytics count it).
        sent=Count(
            "messages",
            filter=Q(messages__status__in=[MessageStatus.SENT, MessageStatus.BOUNCED]),
        ),
        pending=Count(
            "messages",
            filter=Q(messages__status__in=[MessageStatus.SCHEDULED, MessageStatus.QUEUED]),
        ),
        failed=Count("messages", filter=Q(messages__status=MessageStatus.FAILED)),
        # Never went: the person's campaign ended before it (a bounce at an earlier step).
        cancelled=Count("messages", filter=Q(messages__status=MessageStatus.CANCELLED)),
        bounced=Count("messages", filter=Q(messages__status=MessageStatus.BOUNCED)),
        messages_count=Count("messages"),
    )
    enrollments = list(
        campaign.enrollments.select_related("contact").order_by("-enrolled_at")[:200]
    )
    # Someone suppressed after they were enrolled gets nothing more: say so and why, not "Not
    # started" or "In progress".
    entries = suppressions_for(
        request.tenant.pk,
        [e.contact.email for e in enrollments if e.status == EnrollmentStatus.ACTIVE],
    )
    for e in enrollments:
        active = e.status == EnrollmentStatus.ACTIVE
        e.suppression = entries.get(e.contact.email.lower()) if active else None  # type: ignore[attr-defined]
    return {
        "campaign": campaign,
        "steps": steps,
        "enrollments": enrollments,
        "enrolled": campaign.enrollments.count(),
        "step_form": forms.get("step_form") or StepForm(user=request.user),
        "enroll_form": forms.get("enroll_form")
        or EnrollForm(tenant_id=request.tenant.pk, enrolled=_enrolled_ids(campaign)),
    }


def _enrolled_ids(campaign: Campaign) -> set[int]:
    return set(campaign.enrollments.values_list("contact_id", flat=True))


@require_http_methods(["GET"])
@tenant_member_required
def campaign_detail(request: TenantRequest, pk: int) -> HttpResponse:
    campaign = campaign_for_user(request, pk)
    return render(request, "sending/campaign.html", _detail(request, campaign))


@require_POST
@tenant_member_required
def step_add(request: TenantRequest, pk: int) -> HttpResponse:
    campaign = campaign_for_user(request, pk)
    form = StepForm(request.POST, user=request.user)
    if campaign.status == CampaignStatus.ENDED:
        form.add_error(None, gettext("This campaign has ended."))
    if not form.is_valid():
        return render(
            request, "sending/campaign.html", _detail(request, campaign, step_form=form), status=400
        )
    step = services.step_add(campaign=campaign, **form.cleaned_data)
    messages.success(request, gettext("Step %(n)s added.") % {"n": step.position})
    return redirect("sending:campaign", pk=pk)


@require_POST
@tenant_member_required
def step_remove(request: TenantRequest, pk: int, step: int) -> HttpResponse:
    campaign = campaign_for_user(request, pk)
    target = campaign.steps.filter(pk=step).first()
    if target is None:
        raise Http404
    try:
        services.step_remove(step=target)
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(request, gettext("Step removed."))
    return redirect("sending:campaign", pk=pk)


@require_POST
@tenant_member_required
def enroll(request: TenantRequest, pk: int) -> HttpResponse:
    campaign = campaign_for_user(request, pk)
    form = EnrollForm(request.POST, tenant_id=request.tenant.pk, enrolled=_enrolled_ids(campaign))
    if form.is_valid():
        people = list(form.cleaned_data["contacts"])
        for pasted in form.cleaned_data["emails"]:
            people.append(
                services.contact_ensure(
                    tenant=request.tenant, owner=request.user, **pasted._asdict()
                )
            )
        refused = services.campaign_refused(campaign=campaign, contacts=people)
        try:
            added = services.campaign_enroll(campaign=campaign, contacts=people)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            for address, why in sorted(refused.items()):
                text = gettext("Not enrolled: %(address)s is suppressed (%(why)s).")
                messages.warning(request, text % {"address": address, "why": why})
            skipped = len({c.pk for c in people if c.email.lower() not in refused}) - added
            messages.success(request, _enrolled(added, skipped))
            if not form.not_addresses:
                return redirect("sending:campaign", pk=pk)
            # The others are enrolled; what is not an address comes back in the field, with its
            # error, to be corrected and enrolled.
            form = EnrollForm(
                {"emails": "\n".join(form.not_addresses)},
                tenant_id=request.tenant.pk,
                enrolled=_enrolled_ids(campaign),
            )
            form.is_valid()
            return render(
                request, "sending/campaign.html", _detail(request, campaign, enroll_form=form)
            )
    return render(
        request, "sending/campaign.html", _detail(request, campaign, enroll_form=form), status=400
    )


def _enrolled(added: int, skipped: int) -> str:
    text = ngettext("Enrolled %(n)s person.", "Enrolled %(n)s people.", added) % {"n": added}
    if not skipped:
        return text
    # Each count chooses its own plural form ("1 pessoa inscrita (2 já inscritas)").
    already = ngettext("%(skipped)s already enrolled", "%(skipped)s already enrolled", skipped) % {
        "skipped": skipped
    }
    return ngettext(
        "Enrolled %(n)s person (%(already)s).",
        "Enrolled %(n)s people (%(already)s).",
        added,
    ) % {"n": added, "already": already}


ACTIONS = {
    "start": (lambda c: services.campaign_start(campaign=c), gettext_lazy("Campaign started.")),
    "pause": (
        lambda c: services.campaign_set_paused(campaign=c, paused=True),
        gettext_lazy("Campaign paused."),
    ),
    "resume": (
        lambda c: services.campaign_set_paused(campaign=c, paused=False),
        gettext_lazy("Campaign resumed."),
    ),
    "end": (lambda c: services.campaign_end(campaign=c), gettext_lazy("Campaign ended.")),
}


@require_POST
@tenant_member_required
def campaign_action(request: TenantRequest, pk: int, action: str) -> HttpResponse:
    campaign = campaign_for_user(request, pk)
    if action not in ACTIONS:
        raise Http404
    run, done = ACTIONS[action]
    try:
        run(campaign)
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(request, str(done))
    return redirect("sending:campaign", pk=pk)

"""Team settings (tenant admins): team channel, throttling, blocked domains, audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.access import TenantRequest, tenant_admin_required, tenant_object_or_404
from channels import kinds, services
from channels.forms import (
    BlockedDomainForm,
    DomainCapForm,
    SoftBounceForm,
    SpikeProtectionForm,
    ThrottlingForm,
)
from channels.kinds import retired_msc_wording
from channels.models import (
    BlockedDomain,
    Channel,
    ChannelAuditEvent,
    ChannelStatus,
    DomainCap,
    TeamSendingSettings,
)
from channels.team_page import panels
from channels.views._helpers import recent_auth_required
from channels.views.settings import edit_smtp_channel

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# Each section of the team's sending settings: its form, its name in the page's context, and
# what is said once it is saved.
SECTIONS: dict[str, tuple[type[forms.Form], str, StrOrPromise]] = {
    "throttling": (ThrottlingForm, "throttling_form", gettext_lazy("Throttling saved.")),
    "spike_protection": (
        SpikeProtectionForm,
        "spike_form",
        gettext_lazy("Bounce-spike protection saved."),
    ),
    "soft_bounces": (SoftBounceForm, "soft_bounce_form", gettext_lazy("Soft-bounce policy saved.")),
}


def _team_context(request: TenantRequest, **extra: object) -> dict[str, object]:
    # Read only: before the first save the defaults are shown, and no row is made.
    sending = TeamSendingSettings.of_tenant(request.tenant.pk)
    section_forms = {
        name: form_class(
            initial={field: getattr(sending, field) for field in form_class.base_fields}
        )
        for form_class, name, _done in SECTIONS.values()
    }
    channels = Channel.objects.for_tenant(request.tenant)
    return {
        "team_channel": channels.team().first(),
        # Members' mailboxes that may be trial accounts (lower provider limits).
        "trial_mailboxes": channels.filter(
            kind__in=kinds.values(trial_accounts=True), owner__isnull=False
        )
        .exclude(status=ChannelStatus.DISABLED)
        .select_related("owner")
        .order_by("owner__email"),
        **section_forms,
        **panels(request.tenant),  # the move off legacy servers (staff), …
        "blocked_form": BlockedDomainForm(),
        "blocked": BlockedDomain.objects.for_tenant(request.tenant),
        "cap_form": DomainCapForm(initial={"period": "hour"}),
        "caps": DomainCap.objects.for_tenant(request.tenant),
        **extra,
    }


def _section_update(request: TenantRequest, section: str) -> HttpResponse:
    form_class, name, done = SECTIONS[section]
    form = form_class(request.POST)
    if not form.is_valid():
        context = _team_context(request, **{name: form})
        return render(request, "channels/team.html", context, status=400)
    services.team_settings_update(
        tenant=request.tenant, actor=request.user, section=section, values=form.cleaned_data
    )
    messages.success(request, done)
    return redirect("channels:team")


@require_GET
@tenant_admin_required
def team_settings(request: TenantRequest) -> HttpResponse:
    return render(request, "channels/team.html", _team_context(request))


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
@tenant_admin_required
@recent_auth_required
def team_smtp_edit(request: TenantRequest) -> HttpResponse:
    return edit_smtp_channel(request, owner=None)


@require_POST
@tenant_admin_required
def throttling_update(request: TenantRequest) -> HttpResponse:
    return _section_update(request, "throttling")


@require_POST
@tenant_admin_required
def spike_protection_update(request: TenantRequest) -> HttpResponse:
    return _section_update(request, "spike_protection")


@require_POST
@tenant_admin_required
def soft_bounces_update(request: TenantRequest) -> HttpResponse:
    return _section_update(request, "soft_bounces")


@require_POST
@tenant_admin_required
def blocked_domain_add(request: TenantRequest) -> HttpResponse:
    form = BlockedDomainForm(request.POST)
    if not form.is_valid():
        return render(
            request, "channels/team.html", _team_context(request, blocked_form=form), status=400
        )
    services.blocked_domain_add(
        tenant=request.tenant, actor=request.user, domain=form.cleaned_data["domain"]
    )
    messages.success(
        request, _("Sends to %(domain)s will now fail.") % {"domain": form.cleaned_data["domain"]}
    )
    return redirect("channels:team")


@require_POST
@tenant_admin_required
def blocked_domain_remove(request: TenantRequest, pk: int) -> HttpResponse:
    blocked = tenant_object_or_404(request, BlockedDomain.objects.all(), pk=pk)
    services.blocked_domain_remove(blocked=blocked, actor=request.user)
    messages.success(request, _("%(domain)s is no longer blocked.") % {"domain": blocked.domain})
    return redirect("channels:team")


@require_POST
@tenant_admin_required
def domain_cap_add(request: TenantRequest) -> HttpResponse:
    form = DomainCapForm(request.POST)
    if form.is_valid():
        to, period = form.cleaned_data["to"], form.cleaned_data["period"]
        for cap in DomainCap.objects.for_tenant(request.tenant).filter(period=period):
            if (cap.provider, sorted(cap.domains)) == (to["provider"], sorted(to["domains"])):
                form.add_error(
                    "to",
                    _("There is already a cap on this: %(cap)s. Remove it to change it.")
                    % {"cap": cap.label},
                )
    if not form.is_valid():
        return render(
            request, "channels/team.html", _team_context(request, cap_form=form), status=400
        )
    data = form.cleaned_data
    cap = services.domain_cap_add(
        tenant=request.tenant,
        actor=request.user,
        limit=data["limit"],
        period=data["period"],
        **data["to"],
    )
    messages.success(request, _("Saved: %(cap)s.") % {"cap": cap.label})
    return redirect("channels:team")


@require_POST
@tenant_admin_required
def domain_cap_remove(request: TenantRequest, pk: int) -> HttpResponse:
    cap = tenant_object_or_404(request, DomainCap.objects.all(), pk=pk)
    services.domain_cap_remove(cap=cap, actor=request.user)
    messages.success(request, _("Removed: %(cap)s.") % {"cap": cap.label})
    return redirect("channels:team")


@require_GET
@tenant_admin_required
def audit_log(request: TenantRequest) -> HttpResponse:
    events = ChannelAuditEvent.objects.for_tenant(request.tenant).select_related("actor")
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    if not request.tenant.legacy_toutapp:  # moved off legacy: shown in its new words
        page.object_list = list(page.object_list)
        for event in page.object_list:
            event.subject = retired_msc_wording(event.subject)
            event.changes = _reworded(event.changes)
    return render(request, "channels/audit.html", {"page": page})


def _reworded(value: Any) -> Any:
    if isinstance(value, str):
        return retired_msc_wording(value)
    if isinstance(value, dict):
        return {key: _reworded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_reworded(item) for item in value]
    return value

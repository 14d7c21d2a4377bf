"""Who may see and change which message, template and campaign (one helper per resource)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from accounts.access import TenantRequest, tenant_object_or_404
from sending.models import Campaign, Message, Template


def team_scope(request: TenantRequest) -> bool:
    """Admins may look at the whole team (``?scope=team``); reps only ever see their own."""
    return request.membership.is_admin and request.GET.get("scope") == "team"


def message_for_user(request: TenantRequest, pk: int) -> Message:
    message = tenant_object_or_404(request, Message.objects.select_related("channel"), pk=pk)
    if message.sender_id != request.user.pk and not request.membership.is_admin:
        raise Http404
    return message


def template_for_user(request: TenantRequest, pk: int, *, write: bool = False) -> Template:
    template = tenant_object_or_404(request, Template.objects.all(), pk=pk)
    if template.owner_id != request.user.pk and not template.shared:
        raise Http404
    if write and not can_change_template(request, template):
        raise PermissionDenied("Only its author or a tenant admin can change a shared template.")
    return template


def can_change_template(request: TenantRequest, template: Template) -> bool:
    """Its author and the tenant's admins; others may use a shared template, not change it."""
    return template.owner_id == request.user.pk or request.membership.is_admin


def campaign_for_user(request: TenantRequest, pk: int) -> Campaign:
    campaign = tenant_object_or_404(
        request, Campaign.objects.select_related("owner", "identity"), pk=pk
    )
    if campaign.owner_id != request.user.pk and not request.membership.is_admin:
        raise Http404
    return campaign

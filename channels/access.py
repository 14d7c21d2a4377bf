"""Access helpers for channel pages: who may read and change which channel."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404

from accounts.access import TenantRequest, tenant_object_or_404
from channels import kinds
from channels.models import Channel, ChannelQuerySet, ChannelStatus, Identity


def channel_for_user(request: TenantRequest, pk: int, *, write: bool = False) -> Channel:
    """The user's own channel, or (admins only, for writes) the team channel. Else 404/403."""
    channel = tenant_object_or_404(request, Channel.objects.select_related("owner"), pk=pk)
    if channel.owner_id == request.user.pk:
        return channel
    if channel.owner_id is None:
        if write and not request.membership.is_admin:
            raise PermissionDenied("Only tenant admins can change the team channel.")
        return channel
    # Another member's personal channel: not something this user can see.
    raise Http404


def mailbox_for_user(request: TenantRequest, pk: int) -> Channel:
    """A personal mailbox whose account type (trial or not) this user may set: their own, or,
    for a tenant admin, any member's. Else 404."""
    channel = tenant_object_or_404(request, Channel.objects.select_related("owner"), pk=pk)
    mine = channel.owner_id == request.user.pk
    if channel.owner_id is None or not channel.kind_spec.trial_accounts:
        raise Http404
    if not mine and not request.membership.is_admin:
        raise Http404
    return channel


def identity_for_user(request: TenantRequest, pk: int) -> Identity:
    return tenant_object_or_404(request, Identity.objects.filter(user=request.user), pk=pk)


def visible_channels(request: TenantRequest) -> ChannelQuerySet:
    """The tenant's channels its members may see. A modern tenant never sees an MSC channel,
    not even the retired one a move off legacy left behind (it is kept for the staff's
    migration report)."""
    channels = Channel.objects.for_tenant(request.tenant)
    if not request.tenant.legacy_toutapp:
        channels = channels.exclude(kind__in=kinds.values(legacy_only=True))
    return channels


def choosable_channels(request: TenantRequest) -> ChannelQuerySet:
    """What an identity may be set to send through: the user's own channels and the team's,
    visible and not retired (a channel needing attention stays: it can be repaired)."""
    return (
        visible_channels(request)
        .filter(Q(owner=request.user) | Q(owner__isnull=True))
        .exclude(status=ChannelStatus.DISABLED)
        .order_by("owner_id", "created_at")
    )


def domain_checked_channel(request: TenantRequest, pk: int) -> Channel:
    """A channel whose sending domains this member may have looked up: their own custom SMTP
    channel, or (tenant admins) the team's; a rep asking for the team's gets 403. Else 404
    (another tenant's, another member's, another kind)."""
    channel = tenant_object_or_404(
        request,
        Channel.objects.filter(kind__in=kinds.values(domain_check=True, legacy_only=False)),
        pk=pk,
    )
    if channel.owner_id not in (None, request.user.pk):
        raise Http404
    if channel.owner_id is None and not request.membership.is_admin:
        raise PermissionDenied("Only tenant admins can check the team channel's domains.")
    return channel

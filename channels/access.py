"""Access helpers for channel pages: who may read and change which channel."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from accounts.access import TenantRequest, tenant_object_or_404
from channels.models import Channel, Identity


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
    from django.http import Http404

    raise Http404


def identity_for_user(request: TenantRequest, pk: int) -> Identity:
    return tenant_object_or_404(request, Identity.objects.filter(user=request.user), pk=pk)

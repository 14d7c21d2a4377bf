from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.access import TenantRequest, tenant_member_required
from channels.catalogue import kinds_for


@require_GET
@tenant_member_required
def channel_overview(request: TenantRequest) -> HttpResponse:
    kinds = kinds_for(legacy_toutapp=request.tenant.legacy_toutapp)
    return render(request, "channels/overview.html", {"kinds": kinds})

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.access import TenantRequest, tenant_member_required


@require_GET
@tenant_member_required
def analytics_overview(request: TenantRequest) -> HttpResponse:
    return render(request, "analytics/overview.html")


@require_GET
@tenant_member_required
def live_feed(request: TenantRequest) -> HttpResponse:
    return render(request, "analytics/live_feed.html")

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.access import TenantRequest, tenant_member_required
from analytics.models import Notification


@require_GET
@tenant_member_required
def analytics_overview(request: TenantRequest) -> HttpResponse:
    return render(request, "analytics/overview.html")


@require_GET
@tenant_member_required
def live_feed(request: TenantRequest) -> HttpResponse:
    entries = Notification.objects.for_tenant(request.tenant).select_related("user")
    if not request.membership.is_admin:
        entries = entries.filter(user=request.user)
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    return render(request, "analytics/live_feed.html", {"page": page})

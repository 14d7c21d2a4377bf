from __future__ import annotations

from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.access import staff_required
from accounts.models import Role, Tenant


@require_GET
@staff_required
def staff_home(request: HttpRequest) -> HttpResponse:
    tenants = Tenant.objects.annotate(
        users=Count("memberships", filter=Q(memberships__user__is_active=True)),
        admins=Count(
            "memberships",
            filter=Q(memberships__role=Role.ADMIN, memberships__user__is_active=True),
        ),
    ).order_by("name")
    return render(request, "staff/home.html", {"tenants": tenants})

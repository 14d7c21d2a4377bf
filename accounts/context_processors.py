from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def tenancy(request: HttpRequest) -> dict[str, Any]:
    membership = getattr(request, "membership", None)
    return {
        "current_membership": membership or None,
        "current_tenant": getattr(request, "tenant", None) or None,
        "is_tenant_admin": bool(membership and membership.is_admin),
    }

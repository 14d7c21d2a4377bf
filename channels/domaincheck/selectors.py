"""What the pages read about sending-domain checks."""

from __future__ import annotations

from django.db.models import Q
from django.http import HttpRequest

from accounts.home import Notice
from accounts.models import Tenant, User
from channels import kinds
from channels.models import ChannelStatus, SendingDomainCheck

WARNINGS_TEMPLATE = "channels/_domain_warnings.html"


def domain_warnings(*, tenant: Tenant, user: User) -> list[SendingDomainCheck]:
    """Failing or warning domains of the custom SMTP channels a tenant admin looks after: the
    team's and their own (legacy pool channels are staff's business)."""
    return list(
        SendingDomainCheck.objects.for_tenant(tenant)
        .needing_attention()
        .filter(channel__kind__in=kinds.values(domain_check=True, legacy_only=False))
        .filter(Q(channel__owner__isnull=True) | Q(channel__owner=user))
        .exclude(channel__status=ChannelStatus.DISABLED)
        .select_related("channel")
        .order_by("channel_id", "domain")
    )


def warnings_context(request: HttpRequest) -> dict[str, object] | None:
    """For a tenant admin with domains to fix, what ``WARNINGS_TEMPLATE`` shows, else None."""
    membership = getattr(request, "membership", None)
    if not (membership and membership.is_admin):
        return None
    warnings = domain_warnings(tenant=request.tenant, user=request.user)  # type: ignore[attr-defined, arg-type]
    return {"warnings": warnings} if warnings else None


def home_notices(request: HttpRequest) -> list[Notice]:
    context = warnings_context(request)
    return [Notice(WARNINGS_TEMPLATE, context)] if context else []

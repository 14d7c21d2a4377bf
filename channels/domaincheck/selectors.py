"""What the pages read about sending-domain checks."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q
from django.http import HttpRequest

from accounts.home import Notice
from accounts.models import Tenant, User
from channels import kinds
from channels.models import (
    ChannelStatus,
    DomainCheckState,
    SendingDomainCheck,
    SendingDomainCheckQuerySet,
)

WARNINGS_TEMPLATE = "channels/_domain_warnings.html"


def looked_after(*, tenant: Tenant, user: User) -> SendingDomainCheckQuerySet:
    """The domain checks of the custom SMTP channels a tenant admin looks after: the team's and
    their own, live (legacy pool channels are staff's business). The home tile counts these,
    and warns of the ones that need attention, so that its figures and warnings agree."""
    return (
        SendingDomainCheck.objects.for_tenant(tenant)
        .filter(channel__kind__in=kinds.values(domain_check=True, legacy_only=False))
        .filter(Q(channel__owner__isnull=True) | Q(channel__owner=user))
        .exclude(channel__status=ChannelStatus.DISABLED)
    )


def domain_warnings(*, tenant: Tenant, user: User) -> list[SendingDomainCheck]:
    """Failing or warning domains of ``looked_after``."""
    return list(
        looked_after(tenant=tenant, user=user)
        .needing_attention()
        .select_related("channel")
        .order_by("channel_id", "domain")
    )


@dataclass(frozen=True)
class DomainWarning:
    """One domain to fix, however many channels send from it: its worst check (a failure
    before a warning) and the names of the channels that share it."""

    check: SendingDomainCheck
    channels: list[str]

    @property
    def domain(self) -> str:
        return self.check.domain

    @property
    def state(self) -> str:
        return self.check.state


def by_domain(checks: list[SendingDomainCheck]) -> list[DomainWarning]:
    found: dict[str, list[SendingDomainCheck]] = {}
    for check in checks:
        found.setdefault(check.domain, []).append(check)
    warnings = []
    for same in found.values():
        worst = min(same, key=lambda c: (c.state != DomainCheckState.FAIL, c.channel_id))
        names = list(dict.fromkeys(c.channel.label for c in same))
        warnings.append(DomainWarning(worst, names))
    # The failures first (the callout's colour follows the first), then as they came.
    return sorted(warnings, key=lambda w: w.state != DomainCheckState.FAIL)


def warnings_context(request: HttpRequest) -> dict[str, object] | None:
    """For a tenant admin with domains to fix, what ``WARNINGS_TEMPLATE`` shows, else None:
    one warning per domain, naming the channels that send from it."""
    membership = getattr(request, "membership", None)
    if not (membership and membership.is_admin):
        return None
    checks = domain_warnings(tenant=request.tenant, user=request.user)  # type: ignore[attr-defined, arg-type]
    return {"warnings": by_domain(checks)} if checks else None


def home_notices(request: HttpRequest) -> list[Notice]:
    context = warnings_context(request)
    return [Notice(WARNINGS_TEMPLATE, context)] if context else []

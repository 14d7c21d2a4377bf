"""The overview at the top of the staff console (legacy tenants and their migrations, the MSC
pool's health, tenants with paused channels or open bounce spikes), and the tenant admin's
attention line for people not yet moved off legacy (``accounts.home``).

Query budget, whatever the number of tenants: the console's overview is five queries (legacy
tenants, migrations, the pool, tenants with paused channels, tenants with open spikes), each
one aggregate or a short list; the attention line one or two."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import ngettext

from accounts.home import Attention
from accounts.models import Tenant
from bounces.models import BounceSpike
from channels import kinds
from channels.models import Channel, ChannelStatus, MscServer
from staff.models import LegacyMigration
from staff.selectors import migration_status

LISTED = 8


@dataclass
class TenantCount:
    pk: int
    name: str
    n: int


@dataclass
class StaffOverview:
    legacy_tenants: int
    migrations_running: list[LegacyMigration]
    migrations_done: int
    pool: dict[str, int]
    paused: list[TenantCount] = field(default_factory=list)
    paused_tenants: int = 0
    spikes: list[TenantCount] = field(default_factory=list)
    spike_tenants: int = 0


def _by_tenant(rows: Any) -> tuple[list[TenantCount], int]:
    found = list(
        rows.values("tenant_id", "tenant__name")
        .annotate(n=Count("pk"))
        .order_by("-n", "tenant__name")
    )
    return [TenantCount(r["tenant_id"], r["tenant__name"], r["n"]) for r in found[:LISTED]], len(
        found
    )


def overview() -> StaffOverview:
    legacy = Tenant.objects.filter(legacy_toutapp=True).count()
    migrations = list(LegacyMigration.objects.select_related("tenant").order_by("-started_at"))
    running = [m for m in migrations if m.finished_at is None]
    pool = MscServer.objects.aggregate(
        total=Count("pk"),
        switched_on=Count("pk", filter=Q(enabled=True)),
        failing=Count("pk", filter=Q(enabled=True, last_check_ok=False)),
        unchecked=Count("pk", filter=Q(enabled=True, last_check_at__isnull=True)),
    )
    paused, paused_tenants = _by_tenant(Channel.objects.filter(status=ChannelStatus.PAUSED))
    spikes, spike_tenants = _by_tenant(BounceSpike.objects.filter(resolved_at__isnull=True))
    return StaffOverview(
        legacy,
        running[:LISTED],
        len(migrations) - len(running),
        pool,
        paused,
        paused_tenants,
        spikes,
        spike_tenants,
    )


def home_attention(request: HttpRequest) -> list[Attention]:
    """Tenant admins: the people still on the shared legacy servers (a legacy tenant's MSC
    channel owners), or, once a migration started, the people it has not moved yet."""
    member = getattr(request, "membership", None)
    if not (member and member.is_admin):
        return []
    tenant = request.tenant  # type: ignore[attr-defined]
    link = f"{reverse('channels:team')}#moving-off-legacy"
    if tenant.legacy_toutapp:
        n = (
            Channel.objects.filter(tenant=tenant, kind__in=kinds.values(legacy_only=True))
            .exclude(status=ChannelStatus.DISABLED)
            .exclude(owner__isnull=True)
            .values("owner_id")
            .distinct()
            .count()
        )
        text = ngettext(
            "%(n)d person still sends through MSC servers",
            "%(n)d people still send through MSC servers",
            n,
        ) % {"n": n}
        return [Attention("legacy-people", n, text, reverse("channels:team"))]
    status = migration_status(tenant)
    if status is None:
        return []
    n = len(status.waiting)
    text = ngettext(
        "%(n)d person not yet moved off the shared legacy servers: their mail waits until they "
        "have a channel",
        "%(n)d people not yet moved off the shared legacy servers: their mail waits until they "
        "have a channel",
        n,
    ) % {"n": n}
    return [Attention("legacy-people", n, text, link)]

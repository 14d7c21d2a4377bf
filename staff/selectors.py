"""What the staff console shows: tenants with their channel mix and recent volume, and the
legacy tenants still sending through MSC servers. Volumes come from the analytics roll-ups."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from accounts.models import Tenant
from analytics.figures import BounceFigures
from analytics.models import TeamRollup
from channels import kinds
from channels.models import Channel, ChannelStatus
from staff.models import LegacyMigration

DAYS = 30
MIX = {value: kind.staff_label for value, kind in kinds.KINDS.items()}
MIX_ORDER = list(dict.fromkeys(MIX.values()))


@dataclass
class TenantLine:
    tenant: Tenant
    users: int
    mix: dict[str, int] = field(default_factory=dict)  # users with a channel of each kind
    team_channel: str = ""
    sent: int = 0
    bounced: int = 0

    @property
    def mix_items(self) -> list[tuple[str, int]]:
        return [(label, self.mix.get(label, 0)) for label in MIX_ORDER]


def tenants(search: str = "") -> QuerySet[Tenant]:
    """Tenants with ``users``, their active users: the one count the list and the detail page
    both show."""
    found = Tenant.objects.annotate(
        users=Count("memberships", filter=Q(memberships__user__is_active=True))
    ).order_by("name")
    if search:
        found = found.filter(Q(name__icontains=search) | Q(slug__icontains=search))
    return found


def tenant_lines(page: Iterable[Tenant]) -> list[TenantLine]:
    """Channel mix and 30-day volume for one page of tenants from ``tenants()`` (which counts
    their users): two queries."""
    lines = {t.pk: TenantLine(t, t.users) for t in page}  # type: ignore[attr-defined]
    if not lines:
        return []
    channels = (
        Channel.objects.filter(tenant_id__in=lines)
        .exclude(status=ChannelStatus.DISABLED)
        .values("tenant_id", "kind", "owner_id")
    )
    owners: dict[tuple[int, str], set[int]] = defaultdict(set)
    for row in channels:
        if row["owner_id"] is None:
            lines[row["tenant_id"]].team_channel = MIX.get(row["kind"], row["kind"])
        else:
            owners[(row["tenant_id"], MIX.get(row["kind"], row["kind"]))].add(row["owner_id"])
    for (tenant_id, label), people in owners.items():
        lines[tenant_id].mix[label] = len(people)
    since = timezone.localdate() - timedelta(days=DAYS - 1)
    volume = (
        TeamRollup.objects.filter(tenant_id__in=lines, day__gte=since)
        .values("tenant_id")
        .annotate(sent=Sum("sent"), hard=Sum("hard"), soft=Sum("soft"))
        .order_by()
    )
    for total in volume:
        line = lines[total["tenant_id"]]
        line.sent, line.bounced = total["sent"], total["hard"] + total["soft"]
    return list(lines.values())


@dataclass
class LegacyLine(BounceFigures):
    tenant: Tenant
    msc_users: int = 0
    sent: int = 0
    hard: int = 0
    soft: int = 0


def legacy_report() -> list[LegacyLine]:
    """Legacy tenants with their users on MSC servers and the last 30 days of MSC mail, most
    mail first: the order in which to plan migrations."""
    legacy = list(Tenant.objects.filter(legacy_toutapp=True))
    lines = {t.pk: LegacyLine(t) for t in legacy}
    msc = Channel.objects.filter(tenant_id__in=lines, kind__in=kinds.values(legacy_only=True))
    for row in msc.values("tenant_id").annotate(n=Count("owner", distinct=True)).order_by():
        lines[row["tenant_id"]].msc_users = row["n"]
    ids = list(msc.values_list("pk", flat=True))
    since = timezone.localdate() - timedelta(days=DAYS - 1)
    volume = (
        TeamRollup.objects.filter(tenant_id__in=lines, channel_key__in=ids, day__gte=since)
        .values("tenant_id")
        .annotate(sent=Sum("sent"), hard=Sum("hard"), soft=Sum("soft"))
        .order_by()
    )
    for row in volume:
        line = lines[row["tenant_id"]]
        line.sent, line.hard, line.soft = row["sent"], row["hard"], row["soft"]
    return sorted(lines.values(), key=lambda line: (-line.sent, line.tenant.name))


@dataclass
class MigrationStatus:
    moved: list[str]
    waiting: list[tuple[str, int]]  # email, messages held for a channel

    @property
    def total(self) -> int:
        return len(self.moved) + len(self.waiting)


def migration_status(tenant: Tenant) -> MigrationStatus | None:
    """For a tenant moved off legacy: who of the people who used MSC servers has a working
    channel now, and who has not yet (with the mail waiting for them)."""
    from sending.models import Hold, Message

    if not LegacyMigration.objects.filter(tenant=tenant).exists():
        return None
    former = (
        Channel.objects.filter(tenant=tenant, kind__in=kinds.values(legacy_only=True))
        .exclude(owner__isnull=True)
        .values_list("owner_id", "owner__email")
    )
    people = dict(former)
    team_for_all = Channel.objects.filter(
        tenant=tenant, owner__isnull=True, use_for_all_members=True, status=ChannelStatus.ACTIVE
    ).exists()
    working = set(
        Channel.objects.filter(tenant=tenant, owner_id__in=people, status=ChannelStatus.ACTIVE)
        .exclude(kind__in=kinds.values(legacy_only=True))
        .values_list("owner_id", flat=True)
    )
    held = dict(
        Message.objects.filter(tenant=tenant, sender_id__in=people, hold=Hold.CHANNEL)
        .values_list("sender_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    moved, waiting = [], []
    for pk, email in sorted(people.items(), key=lambda item: item[1]):
        if pk in working or (team_for_all and not held.get(pk)):
            moved.append(email)
        else:
            waiting.append((email, held.get(pk, 0)))
    return MigrationStatus(moved, waiting)

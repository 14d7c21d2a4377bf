"""The staff console's overview: legacy tenants and migrations, the MSC pool's health, and the
tenants with paused channels or open bounce spikes, each figure from the database and a link to
where it comes from. Autocommit, as production serves the page."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from bounces.models import BounceSpike
from channels.kinds import ChannelKind
from channels.models import Channel, ChannelStatus, MscServer
from staff.models import LegacyMigration
from tests.factories import MembershipFactory, TenantFactory

pytestmark = pytest.mark.django_db(transaction=True)


def figure(page: str, name: str) -> int:
    found = re.search(rf'data-figure="{re.escape(name)}"[^>]*>(.*?)</(?:a|span|strong)>', page)
    assert found, f"no figure {name!r}"
    return int(re.search(r"\d+", re.sub(r"<[^>]+>", "", found.group(1))).group())  # type: ignore[union-attr]


def test_staff_see_legacy_tenants_the_pool_and_tenants_in_trouble(
    staff_client: Client, acme: Tenant, globex: Tenant, staff_user: User
) -> None:
    initech = TenantFactory(name="Initech", slug="initech", legacy_toutapp=True)
    moved = TenantFactory(name="Hooli", slug="hooli")
    LegacyMigration.objects.create(tenant=moved, users=4, told=1)
    LegacyMigration.objects.create(
        tenant=TenantFactory(name="Done", slug="done"), users=2, told=2, finished_at=timezone.now()
    )
    MscServer.objects.create(
        name="a", host="a.test", username="u", last_check_ok=True, last_check_at=timezone.now()
    )
    MscServer.objects.create(
        name="b", host="b.test", username="u", last_check_ok=False, last_check_at=timezone.now()
    )
    MscServer.objects.create(name="c", host="c.test", username="u", enabled=False)
    rep = MembershipFactory(tenant=acme, user__email="r@acme.test").user
    paused = Channel.objects.create(
        tenant=acme, owner=rep, kind=ChannelKind.CUSTOM_SMTP, status=ChannelStatus.PAUSED
    )
    BounceSpike.objects.create(
        tenant=acme,
        channel=paused,
        detected_at=timezone.now(),
        window_start=timezone.now(),
        sent=10,
        bounced=5,
        threshold_pct=20,
    )
    BounceSpike.objects.create(
        tenant=initech,
        provider="google",
        detected_at=timezone.now(),
        window_start=timezone.now(),
        sent=10,
        bounced=5,
        threshold_pct=20,
        resolved_at=timezone.now(),
    )

    page = staff_client.get(reverse("staff:home")).content.decode()
    assert figure(page, "legacy-tenants") == Tenant.objects.filter(legacy_toutapp=True).count() == 2
    assert figure(page, "migrations-done") == 1
    assert "1 of 4 told (25 %)" in page
    assert figure(page, "pool-switched-on") == MscServer.objects.filter(enabled=True).count() == 2
    assert figure(page, "pool-failing") == 1
    assert figure(page, "pool-unchecked") == 0
    assert figure(page, "paused-tenants") == 1 and figure(page, f"paused-{acme.pk}") == 1
    assert figure(page, "spike-tenants") == 1  # Initech's spike was resolved
    assert f'href="{reverse("staff:tenant", args=[acme.pk])}"' in page
    assert f'href="{reverse("staff:servers")}"' in page


def test_an_empty_pool_says_what_to_do(staff_client: Client) -> None:
    page = staff_client.get(reverse("staff:home")).content.decode()
    assert "The pool is empty" in page
    assert "Nothing paused anywhere." in page

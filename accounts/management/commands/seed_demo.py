"""Demo data for the embedded run: two tenants, their users and a staff user. Idempotent."""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from accounts.models import Membership, Role, Tenant, User

DEMO_PASSWORD = "demo-password-123"  # noqa: S105 - documented demo login, refused in production

TENANTS = [("acme", "Acme", False), ("globex", "Globex", True)]
USERS = [
    ("admin@acme.test", "acme", Role.ADMIN, "Ada", "Admin"),
    ("rep@acme.test", "acme", Role.REP, "Rick", "Rep"),
    ("admin@globex.test", "globex", Role.ADMIN, "Gina", "Admin"),
    ("rep@globex.test", "globex", Role.REP, "Greg", "Rep"),
]
STAFF = [("staff@msc.test", "Sam", "Staff")]


class Command(BaseCommand):
    help = "Create (or reset) the demo tenants Acme and Globex, their users and a staff user."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even though DEBUG is false (never in production).",
        )

    def handle(self, *args: Any, force: bool = False, **options: Any) -> None:
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates users with a published password; it refuses to run with "
                "DEBUG=false. Pass --force if this really is a throwaway database."
            )
        with transaction.atomic():
            tenants = {}
            for slug, name, legacy in TENANTS:
                tenants[slug], _ = Tenant.objects.update_or_create(
                    slug=slug, defaults={"name": name, "legacy_toutapp": legacy}
                )
            for email, slug, role, first, last in USERS:
                user = self._user(email, first, last, staff=False)
                Membership.objects.update_or_create(
                    user=user,
                    defaults={"tenant": tenants[slug], "role": role, "joined_at": timezone.now()},
                )
            for email, first, last in STAFF:
                self._user(email, first, last, staff=True)
            from channels.demo import seed_channels

            seed_channels(tenants)
            from sending.demo import seed_sending

            seed_sending(tenants)
            from bounces.demo import seed_bounces

            for tenant in tenants.values():
                seed_bounces(tenant)
            from analytics.rollups import rebuild

            # The demo's history was written as rows: count it once, from the raw tables.
            rebuild([tenant.pk for tenant in tenants.values()])
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: tenants Acme (modern) and Globex (legacy ToutApp); "
                f"users {', '.join(u[0] for u in USERS + STAFF)} (password {DEMO_PASSWORD})."
            )
        )

    def _user(self, email: str, first: str, last: str, *, staff: bool) -> User:
        user, _ = User.objects.update_or_create(
            email=email,
            defaults={
                "first_name": first,
                "last_name": last,
                "is_staff": staff,
                "is_superuser": staff,
                "is_active": True,
            },
        )
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
        EmailAddress.objects.update_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
        return user

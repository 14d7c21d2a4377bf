"""Demo data for the embedded run: two tenants, their users and a staff user, their channels,
mail and bounces. Idempotent."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts.demo import DEMO_PASSWORD, STAFF, USERS, seed_accounts
from analytics import rollups
from bounces.demo import seed_bounces
from bounces.selectors import outcomes
from channels.demo import seed_channels
from sending.demo import seed_sending


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
            tenants = seed_accounts()
            seed_channels(tenants)
            seed_sending(tenants)
            for tenant in tenants.values():
                seed_bounces(tenant)
            # The demo's history was written as rows: count it once, from the raw tables.
            rollups.rebuild([tenant.pk for tenant in tenants.values()], outcomes=outcomes)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: tenants Acme (modern) and Globex (legacy ToutApp); "
                f"users {', '.join(u[0] for u in USERS + STAFF)} (password {DEMO_PASSWORD})."
            )
        )

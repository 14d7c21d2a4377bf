"""Recompute the daily roll-ups from the raw tables (messages and bounce events).

Safe to run at any time: each tenant is rebuilt in its own transaction. Figures on the analytics
pages come from the roll-ups; this gives the same figures the incremental updates keep.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.template.defaultfilters import pluralize

from accounts.models import Tenant
from analytics import rollups
from bounces.selectors import outcomes


class Command(BaseCommand):
    help = "Rebuild the analytics roll-ups from messages and bounce events, with a progress bar."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", action="append", default=[], help="Slug; repeatable.")

    def handle(self, *args: Any, tenant: list[str], **options: Any) -> None:
        tenants = Tenant.objects.order_by("pk")
        if tenant:
            tenants = tenants.filter(slug__in=tenant)
        ids = list(tenants.values_list("pk", flat=True))
        started = time.monotonic()
        interactive = sys.stdout.isatty()

        def progress(done: int) -> None:
            width = 30
            filled = int(width * done / max(len(ids), 1))
            bar = "#" * filled + "-" * (width - filled)
            line = f"[{bar}] {done}/{len(ids)} tenants, {time.monotonic() - started:.1f} s"
            self.stdout.write(("\r" + line) if interactive else line, ending="")
            if not interactive or done == len(ids):
                self.stdout.write("")

        rollups.rebuild(ids, outcomes=outcomes, progress=progress)
        tenants_done = f"{len(ids)} tenant{pluralize(len(ids))}"
        self.stdout.write(self.style.SUCCESS(f"Rebuilt the roll-ups of {tenants_done}."))

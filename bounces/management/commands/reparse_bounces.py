"""``manage.py reparse_bounces [--tenant SLUG] [--since DATE] [--dry-run]``: read the stored raw
bounces again with the current parser, print what changes, and (without ``--dry-run``) apply it.

Bounces go by ascending id in batches, each batch one transaction (``bounces.reclassify``), so
the events, messages, campaigns, roll-ups and feed agree after every batch. A run that stops
part-way loses nothing: run it again, and the bounces already read by the current parser are
skipped (or pass ``--after-id`` with the last id it printed). A second run changes nothing.
"""

from __future__ import annotations

import time
from datetime import datetime
from datetime import time as day_start
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

import bounceparse
from accounts.models import Tenant
from bounces import reclassify


def _since(value: str) -> datetime:
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--since: {value!r} is not a date (2026-11-01) or a date and time.")
        moment = datetime.combine(day, day_start())
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


class Command(BaseCommand):
    help = (
        "Re-classify stored bounces with the current parser: print the changes (old → new reason, "
        "hard/soft) and apply them, unless --dry-run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", action="append", default=[], help="Slug; repeatable.")
        parser.add_argument("--since", help="Only bounces received on or after this date.")
        parser.add_argument("--dry-run", action="store_true", help="Print, write nothing.")
        parser.add_argument("--after-id", type=int, default=0, help="Resume after this bounce id.")
        parser.add_argument(
            "--all",
            action="store_true",
            help="Also re-read bounces the current parser has read already.",
        )
        parser.add_argument("--batch-size", type=int, default=reclassify.BATCH)

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = None
        if options["tenant"]:
            tenants = list(Tenant.objects.filter(slug__in=options["tenant"]))
            missing = set(options["tenant"]) - {t.slug for t in tenants}
            if missing:
                raise CommandError(f"No tenant with the slug {', '.join(sorted(missing))}.")
        since = _since(options["since"]) if options["since"] else None
        dry_run, size = options["dry_run"], max(1, options["batch_size"])
        found = reclassify.pending(
            tenants=tenants, since=since, after_id=options["after_id"], every=options["all"]
        )
        total = found.count()
        version = bounceparse.PARSER_VERSION
        note = " (dry run: nothing is written)" if dry_run else ""
        self.stdout.write(f"Re-reading {total:,} stored bounces with parser v{version}{note}.")
        tally = reclassify.Tally(last_id=options["after_id"])
        started = time.monotonic()
        try:
            while True:
                ids = list(
                    reclassify.pending(
                        tenants=tenants, since=since, after_id=tally.last_id, every=options["all"]
                    ).values_list("pk", flat=True)[:size]
                )
                if not ids:
                    break
                tally.add(reclassify.reclassify(event_ids=ids, apply=not dry_run))
                tally.last_id = max(tally.last_id, ids[-1])
                self._progress(tally.read, total, started)
        except KeyboardInterrupt:
            self._report(tally, dry_run)
            raise CommandError(
                f"Stopped after bounce {tally.last_id}: run the command again to go on (the "
                f"bounces parser v{version} has read are skipped), or pass --after-id "
                f"{tally.last_id}."
            ) from None
        self._report(tally, dry_run)

    def _progress(self, done: int, total: int, started: float) -> None:
        if not self.stderr.isatty():
            return  # a log file gets the summary, not a bar redrawn a thousand times
        width = 30
        filled = int(width * done / max(total, 1))
        bar = "#" * min(filled, width) + "-" * max(width - filled, 0)
        line = f"\r[{bar}] {done:,}/{total:,} bounces, {time.monotonic() - started:.1f} s"
        self.stderr.write(line, ending="\n" if done >= total else "")

    def _report(self, tally: reclassify.Tally, dry_run: bool) -> None:
        would = "would change" if dry_run else "changed"
        if tally.reasons:
            self.stdout.write(f"\n{'Reason (old → new)':40} bounces")
            for (old, new), n in sorted(tally.reasons.items(), key=lambda kv: (-kv[1], kv[0])):
                self.stdout.write(f"  {f'{old} → {new}':38} {n:>7,}")
        if tally.classes:
            self.stdout.write(f"\n{'Hard / soft (old → new)':40} bounces")
            for (old, new), n in sorted(tally.classes.items(), key=lambda kv: (-kv[1], kv[0])):
                self.stdout.write(f"  {f'{old} → {new}':38} {n:>7,}")
        kept = (
            f", {tally.kept:,} kept as they were (raw message missing or cut short)"
            if tally.kept
            else ""
        )
        self.stdout.write(
            f"\nRead {tally.read:,}: {tally.changed:,} {would}, {tally.same:,} the same{kept}."
        )
        if tally.read:
            self.stdout.write(f"Last bounce read: id {tally.last_id}.")

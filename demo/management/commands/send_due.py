"""Run the sending dispatcher: once, or every N seconds (``--every 5``); with ``--scan``, also
the inbox scans that are due and the classification of receiving domains by their MX.

Production runs both from Celery beat (``dispatch-due-messages``, ``dispatch-inbox-scans``). The
embedded demo has no broker, so ``bin/run`` runs this loop instead, and the work happens here.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.template.defaultfilters import pluralize

from bounces.inbox import dispatch_scans
from sending.domainlimits import classify_recent
from sending.pipeline import dispatch_due

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Send what has come due (scheduled mail, released holds, retries)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--every", type=float, default=0, help="Repeat every N seconds.")
        parser.add_argument("--scan", action="store_true", help="Also scan inboxes that are due.")

    def handle(self, *args: Any, every: float = 0, scan: bool = False, **options: Any) -> None:
        while True:
            try:
                count = dispatch_due()
                if count or not every:
                    self.stdout.write(f"Dispatched {count} message{pluralize(count)}.")
                if scan:
                    dispatch_scans()
                    # What beat's classify-receiving-domains does: a few receiving domains
                    # looked up by their MX, for the channel-by-provider table and the caps.
                    classify_recent()
            except Exception:
                if not every:
                    raise
                # A loop standing in for beat keeps beating, as beat does: one bad tick is
                # logged, and the next one tries again.
                log.exception("The sending dispatcher's tick failed; trying again in %s s", every)
            if not every:
                return
            time.sleep(every)

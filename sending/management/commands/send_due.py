"""Run the sending dispatcher: once, or every N seconds (``--every 5``).

Production runs it from Celery beat (``dispatch-due-messages``). The embedded demo has no broker,
so ``bin/run`` runs this loop instead, and the sends happen in this process.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from sending.pipeline import dispatch_due


class Command(BaseCommand):
    help = "Send what has come due (scheduled mail, released holds, retries)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--every", type=float, default=0, help="Repeat every N seconds.")

    def handle(self, *args: Any, every: float = 0, **options: Any) -> None:
        while True:
            count = dispatch_due()
            if count or not every:
                self.stdout.write(f"Dispatched {count} message(s).")
            if not every:
                return
            time.sleep(every)

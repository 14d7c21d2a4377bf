"""The Celery application. Its periodic schedule is defined here, in code, and nowhere else."""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "msc_admin.settings")

app = Celery("msc_admin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.imports = ["msc_admin.tasks"]

app.conf.beat_schedule = {
    "clear-expired-sessions": {
        "task": "accounts.tasks.clear_expired_sessions",
        "schedule": crontab(minute=17, hour=3),
    },
    # Scheduled mail, released holds, abandoned claims: every wait lives in the database and
    # this finds what has come due.
    "dispatch-due-messages": {
        "task": "sending.tasks.dispatch_due",
        "schedule": 5.0,
    },
    # Each Gmail / Exchange Online inbox is read for bounces every MSC_SCAN_EVERY_SECONDS; this
    # finds the channels whose turn it is and hands each one to a worker.
    # Receiving domains of recent mail classified by their MX (Google, Microsoft, …) for the
    # per-provider caps, spikes and figures; each domain re-checked weekly.
    "classify-receiving-domains": {
        "task": "sending.tasks.classify_recent_domains",
        "schedule": 120.0,
    },
    "dispatch-inbox-scans": {
        "task": "bounces.tasks.dispatch_scans",
        "schedule": 60.0,
    },
    # Sending domains' SPF, DKIM, DMARC and MX: each channel's are looked up again once a day;
    # hourly, so that the checks spread over the day instead of all at one hour.
    "recheck-sending-domains": {
        "task": "channels.tasks.recheck_sending_domains",
        "schedule": crontab(minute=41),
    },
}

"""Analytics pages at scale, measured in one run.

Fills PostgreSQL with COPY: one tenant, 20 reps, 200 templates, 50 campaigns of 3 steps, and
first 100,000 then 1,000,000 messages to 5,000 recipient domains over 90 days (5 % bounced,
with their bounce events and a live-feed entry per send and per bounce), rebuilds the roll-ups,
and times the server side of the template analytics (also narrowed to one recipient domain),
campaign analytics, reasons & domains, live feed and home (the admin's overview) pages (Django's
test client, in process: no network, no browser) against a trivial page in the same run.

``DATABASE_URL=postgresql://… python -m bench.analytics [--sizes 100000,1000000]``
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import time
from datetime import timedelta

from bench._setup import django_database, machine, report

REPS, TEMPLATES, CAMPAIGNS, STEPS, DAYS, BOUNCED = 20, 200, 50, 3, 90, 0.05
REASONS = [("userunknown", True), ("mailboxfull", False), ("blocked", False), ("hostunknown", True)]


def _copy(table: str, columns: list[str], rows: list[tuple]) -> None:
    from django.db import connection

    def cell(value: object) -> str:
        if value is None:
            return "\\N"
        if isinstance(value, bool):
            return "t" if value else "f"
        if isinstance(value, bytes):
            return "\\\\x" + value.hex()
        text = str(value)
        return text.replace("\\", "\\\\").replace("\t", " ").replace("\n", " ")

    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join(cell(v) for v in row) + "\n")
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        copy.write(buffer.getvalue())


def _world():
    from accounts.models import Membership, Role, Tenant, User
    from channels.kinds import ChannelKind
    from channels.models import Channel
    from sending.models import Campaign, CampaignStep, Template

    tenant = Tenant.objects.create(name="Bench", slug="bench")
    admin = User.objects.create_user(email="admin@bench.test", password="x")  # noqa: S106
    Membership.objects.create(user=admin, tenant=tenant, role=Role.ADMIN)
    reps = []
    for n in range(REPS):
        rep = User.objects.create_user(email=f"rep{n}@bench.test", password="x")  # noqa: S106
        Membership.objects.create(user=rep, tenant=tenant, role=Role.REP)
        reps.append(rep)
    channel = Channel.objects.create(tenant=tenant, kind=ChannelKind.CUSTOM_SMTP, config={})
    templates = [
        Template.objects.create(
            tenant=tenant, owner=admin, name=f"Template {n}", subject="S", body="B", shared=True
        )
        for n in range(TEMPLATES)
    ]
    steps = []
    for n in range(CAMPAIGNS):
        campaign = Campaign.objects.create(
            tenant=tenant,
            owner=reps[n % REPS],
            name=f"Campaign {n}",
            status="active",
            started_at=time_now() - timedelta(days=DAYS),
        )
        for position in range(1, STEPS + 1):
            steps.append(
                CampaignStep.objects.create(
                    campaign=campaign,
                    position=position,
                    template=templates[(n * STEPS + position) % TEMPLATES],
                )
            )
    return tenant, admin, reps, channel, templates, steps


def time_now():
    from django.utils import timezone

    return timezone.now()


FEED_COLUMNS = ["tenant_id", "user_id", "kind", "text", "link", "created_at"]


def _row(model, columns: list[str], values: dict) -> tuple:
    """A COPY row: the given values, and every other column's default (NULL where it may be),
    so a column added to the model later does not break the benchmark."""
    import json

    fields = {f.column: f for f in model._meta.concrete_fields}
    row = []
    for column in columns:
        if column in values:
            row.append(values[column])
            continue
        field = fields[column]
        default = None if field.null else field.get_default()
        row.append(json.dumps(default) if isinstance(default, dict | list) else default)
    return tuple(row)


def fill(world, start: int, count: int, rng: random.Random) -> None:
    """Add ``count`` messages (numbered from ``start``) with their bounces and feed entries."""
    from bounces.models import BounceEvent
    from sending.models import Message

    tenant, _admin, reps, channel, templates, steps = world
    now = time_now()
    message_columns = [f.column for f in Message._meta.concrete_fields if f.column != "id"]
    chunk = 100_000
    sent_feed: list[tuple] = []  # the product writes a "sent" entry per message, too
    for base in range(start, start + count, chunk):
        rows = []
        for n in range(base, min(base + chunk, start + count)):
            rep = reps[n % REPS]
            sent_at = now - timedelta(seconds=rng.uniform(0, DAYS * 86400))
            if rng.random() < 0.4:
                step = steps[n % len(steps)]
                template_id, step_id = step.template_id, step.pk
            else:
                template_id, step_id = templates[n % TEMPLATES].pk, None
            bounced = rng.random() < BOUNCED
            values = {
                "tenant_id": tenant.pk,
                "sender_id": rep.pk,
                "channel_id": channel.pk,
                "source": "web",
                "template_id": template_id,
                "campaign_step_id": step_id,
                "to_email": f"p{n}@d{n % 5000}.example",
                "to_domain": f"d{n % 5000}.example",
                "from_email": rep.email,
                "from_name": "Rep",
                "subject": "Hello",
                "body": "Hi",
                "message_id": f"<msc.b{n}@bench.test>",
                "status": "bounced" if bounced else "sent",
                "hold": "",
                "status_detail": "",
                "smtp_code": "250",
                "uncertain": False,
                "attempts": 1,
                "claim_token": "",
                "created_at": sent_at,
                "updated_at": sent_at,
                "sent_at": sent_at,
                "bounced_at": sent_at + timedelta(minutes=5) if bounced else None,
            }
            rows.append(_row(Message, message_columns, values))
            sent_feed.append((tenant.pk, rep.pk, "sent", f"Sent to p{n}: Hello", "", sent_at))
        _copy(Message._meta.db_table, message_columns, rows)
        _copy("analytics_notification", FEED_COLUMNS, sent_feed)
        sent_feed.clear()
    bounced = list(
        Message.objects.filter(tenant=tenant, status="bounced", pk__gt=_last_event_message(tenant))
        .order_by("pk")
        .values_list("pk", "to_email", "sender_id", "bounced_at")
    )
    event_columns = [f.column for f in BounceEvent._meta.concrete_fields if f.column != "id"]
    events, feed = [], []
    for pk, to_email, sender_id, at in bounced:
        reason, hard = REASONS[pk % len(REASONS)]
        values = {
            "tenant_id": tenant.pk,
            "channel_id": channel.pk,
            "message_id": pk,
            "source": "inbox",
            "dedupe_key": f"bench:{pk}",
            "kind": "bounce",
            "recipient": to_email,
            "status": "5.1.1" if hard else "5.2.2",
            "smtp_code": "550",
            "reason": reason,
            "hard": hard,
            "diagnostic": "550 5.1.1 User unknown",
            "original_message_id": "",
            "attributed_by": "message_id",
            "raw": b"Return-Path: <>",
            "raw_truncated": False,
            "received_at": at,
            "created_at": at,
        }
        events.append(_row(BounceEvent, event_columns, values))
        feed.append((tenant.pk, sender_id, "bounced", f"{to_email} bounced ({reason})", "", at))
    _copy(BounceEvent._meta.db_table, event_columns, events)
    _copy("analytics_notification", FEED_COLUMNS, feed)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _last_event_message(tenant) -> int:
    from bounces.models import BounceEvent

    last = BounceEvent.objects.filter(tenant=tenant).order_by("-message_id").first()
    return last.message_id or 0 if last else 0


def timings(client, url: str, rounds: int) -> tuple[float, float]:
    for _ in range(3):
        assert client.get(url).status_code == 200, url  # warm
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    samples.sort()
    p95 = samples[min(len(samples) - 1, round(0.95 * len(samples)) - 1)]
    return statistics.median(samples), p95


PAGES = [
    ("template analytics (team, 30 days)", "/analytics/?scope=team&range=30"),
    ("campaign analytics (team, 30 days)", "/analytics/campaigns/?scope=team&range=30"),
    ("reasons & domains (team, 30 days)", "/analytics/breakdown/?scope=team&range=30"),
    ("templates, one domain (team, 90 d)", "/analytics/?scope=team&range=90&domain=d7.example"),
    ("live feed (admin, first page)", "/analytics/live/"),
    ("home overview (admin)", "/"),
    ("trivial page (baseline)", "/health/"),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"analytics benchmarks: {machine()}")
    with django_database() as database:
        from django.test import Client, override_settings

        from analytics import rollups
        from bounces.selectors import outcomes

        rng = random.Random(7)  # noqa: S311 - benchmark data, reproducible
        world = _world()
        client = Client()
        client.force_login(world[1])
        filled = 0
        results: dict[int, dict[str, tuple[float, float]]] = {}
        for size in sizes:
            started = time.perf_counter()
            fill(world, filled, size - filled, rng)
            filled = size
            loaded = time.perf_counter() - started
            started = time.perf_counter()
            rollups.rebuild([world[0].pk], outcomes=outcomes)
            rebuilt = time.perf_counter() - started
            print(f"  {size:,} messages in {database}: COPY {loaded:.1f} s, ", end="")
            print(f"rebuild_rollups {rebuilt:.1f} s")
            with override_settings(MSC_REQUIRE_MFA=False, ALLOWED_HOSTS=["testserver"]):
                results[size] = {name: timings(client, url, args.rounds) for name, url in PAGES}
            for name, (p50, p95) in results[size].items():
                print(f"    {name:38s} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
        _report(sizes, results)
        if len(sizes) > 1:
            small, large = results[sizes[0]], results[sizes[-1]]
            base = large["trivial page (baseline)"][1]
            print(f"  growth {sizes[0]:,} -> {sizes[-1]:,} (p95 ratio, target <= 1.5)", end="")
            print(" and p95 against the trivial page:")
            for name, _ in PAGES[:-1]:
                print(
                    f"    {name:38s} x{large[name][1] / small[name][1]:5.2f}   "
                    f"{large[name][1] / base:6.1f}x trivial"
                )


def _report(sizes: list[int], results: dict[int, dict[str, tuple[float, float]]]) -> None:
    small, large = results[sizes[0]], results[sizes[-1]]
    base = large["trivial page (baseline)"][1]
    rows = []
    for name, _ in PAGES[:-1]:
        p50, p95 = large[name]
        growth = p95 / small[name][1]
        met = p95 <= 100 and (len(sizes) == 1 or growth <= 1.5)
        rows.append(
            {
                "benchmark": f"{name}, {sizes[-1]:,} messages",
                "product": f"p50 {p50:.0f} ms, p95 {p95:.0f} ms",
                "baseline": f"trivial page p95 {base:.0f} ms",
                "ratio": f"{p95 / base:.1f}x trivial"
                + (f"; {growth:.2f}x the {sizes[0]:,} p95" if len(sizes) > 1 else ""),
                "target": "p95 ≤ 100 ms, ≤ 1.5x the smaller" + (" (met)" if met else " (not met)"),
            }
        )
    report(rows)


if __name__ == "__main__":
    main()

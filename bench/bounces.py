"""Bounce benchmarks, measured in one run:

1. the parser over the corpus vendored in ``tests/corpus/bounces`` (one core) against bare
   ``email.message_from_bytes`` on the same files;
2. ingestion end to end into the database (parse, attribute by Message-ID, insert under the
   count-once constraint, mark the message bounced), one at a time and in the scanner's batches
   of 50, each against a bare INSERT of the same rows done the same way.

``DATABASE_URL=postgresql://… python -m bench.bounces``
"""

from __future__ import annotations

import email
import time
from pathlib import Path

from bench._setup import ROOT, django_database, machine, report

CORPUS = ROOT / "tests" / "corpus" / "bounces" / "emails"
BATCH = 50


def rate(fn, items, rounds: int = 5) -> float:
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for item in items:
            fn(item)
        best = max(best, len(items) / (time.perf_counter() - started))
    return best


def parser() -> tuple[int, float, float]:
    import bounceparse

    files = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
    if not files:
        raise SystemExit(f"no corpus files in {CORPUS}")
    bounceparse.parse(files[0])
    return len(files), rate(bounceparse.parse, files), rate(email.message_from_bytes, files)


def ingestion(n: int) -> tuple[float, float, float, float]:
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import Tenant, User
    from bounces import services
    from bounces.models import BounceEvent
    from sending.models import Message, MessageStatus

    tenant = Tenant.objects.create(name="Bench", slug="bench")
    user = User.objects.create_user(email="rep@bench.test", password="x")  # noqa: S106
    now = timezone.now()
    Message.objects.bulk_create(
        Message(
            tenant=tenant,
            sender=user,
            to_email=f"p{i}@prospect.test",
            to_domain="prospect.test",
            from_email="rep@bench.test",
            subject="Hello",
            body="Hi",
            message_id=f"<msc.bench{i}@bench.test>",
            status=MessageStatus.SENT,
            sent_at=now,
        )
        for i in range(2 * n)
    )
    template = (Path(__file__).parent / "bounce-template.eml").read_text()

    def raw(i: int) -> bytes:
        return template.format(i=i).encode()

    raws = [raw(i) for i in range(n)]
    half = n // 2
    # One at a time (a single bounce, e.g. a webhook post of one event).
    started = time.perf_counter()
    for data in raws[:half]:
        services.ingest(tenant=tenant, raw=data)
    single = half / (time.perf_counter() - started)
    # In batches of 50, as the inbox scanner hands over each FETCH.
    started = time.perf_counter()
    for at in range(half, n, BATCH):
        services.ingest_many(
            tenant=tenant, items=[services.Incoming(r) for r in raws[at : at + BATCH]]
        )
    batched = (n - half) / (time.perf_counter() - started)
    assert BounceEvent.objects.count() == n
    assert Message.objects.filter(status=MessageStatus.BOUNCED).count() == n

    # Baselines: the same rows with no parsing, matching or effects: one INSERT each, and one
    # multi-row INSERT per batch of 50.
    sql = (
        "INSERT INTO bounces_bounceevent (tenant_id, source, dedupe_key, kind, recipient,"
        " status, smtp_code, reason, hard, diagnostic, original_message_id, attributed_by,"
        " raw, raw_truncated, received_at, created_at)"
        " VALUES (%s, 'inbox', %s, 'bounce', %s, '5.1.1', '550', 'userunknown', true, '',"
        " '', '', %s, false, now(), now())"
    )
    rows = [(tenant.pk, f"base{i}", f"p{n + i}@prospect.test", raws[i]) for i in range(n)]
    with connection.cursor() as cursor:
        started = time.perf_counter()
        for row in rows[:half]:
            cursor.execute(sql, row)
        bare_single = half / (time.perf_counter() - started)
        started = time.perf_counter()
        for at in range(half, n, BATCH):
            with transaction.atomic():
                cursor.executemany(sql, rows[at : at + BATCH])
        bare_batched = (n - half) / (time.perf_counter() - started)
    return single, bare_single, batched, bare_batched


def main() -> None:
    count, parse_rate, bare_rate = parser()
    print(f"bounce benchmarks: {machine()}")
    print(f"  parser over {count} corpus files (one core)")
    print(f"    bounceparse.parse          {parse_rate:8.0f} msg/s   (target >= 2000)")
    print(f"    email.message_from_bytes   {bare_rate:8.0f} msg/s")
    print(f"    ratio parse/bare           {parse_rate / bare_rate:8.2f}")
    with django_database() as database:
        n = 4000
        single, bare_single, batched, bare_batched = ingestion(n)
        print(f"  ingestion of {n} bounces into {database} (parse + match + record + effects)")
        print(f"    one at a time               {single:7.0f} bounces/s")
        ratio = single / bare_single
        print(f"    bare INSERT, one at a time  {bare_single:7.0f} rows/s    ratio {ratio:5.2f}")
        print(f"    in batches of {BATCH} (scanner)  {batched:7.0f} bounces/s   (target >= 500)")
        ratio = batched / bare_batched
        print(f"    bare INSERT, same batches   {bare_batched:7.0f} rows/s    ratio {ratio:5.2f}")
    report(
        [
            {
                "benchmark": f"bounce parser, {count} corpus files, one core",
                "product": f"{parse_rate:,.0f} msg/s",
                "baseline": f"email.message_from_bytes {bare_rate:,.0f} msg/s",
                "ratio": f"{parse_rate / bare_rate:.2f}",
                "target": "≥ 2,000 msg/s" + (" (met)" if parse_rate >= 2000 else " (not met)"),
            },
            {
                "benchmark": f"bounce ingestion in batches of {BATCH} ({database})",
                "product": f"{batched:,.0f} bounces/s",
                "baseline": f"bare multi-row INSERT {bare_batched:,.0f}/s",
                "ratio": f"{batched / bare_batched:.2f}",
                "target": "≥ 500/s" + (" (met)" if batched >= 500 else " (not met)"),
            },
            {
                "benchmark": "bounce ingestion one at a time",
                "product": f"{single:,.0f} bounces/s",
                "baseline": f"one bare INSERT per row {bare_single:,.0f}/s",
                "ratio": f"{single / bare_single:.2f}",
                "target": "—",
            },
        ]
    )


if __name__ == "__main__":
    main()

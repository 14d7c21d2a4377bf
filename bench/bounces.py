"""Bounce benchmarks, measured in one run:

1. the parser over ``../shared/bounce-corpus`` (one core) against bare ``email.message_from_bytes``
   on the same files;
2. ingestion end to end into the database (parse, attribute by Message-ID, insert under the
   count-once constraint, mark the message bounced) against a bare INSERT of the same rows.

``DATABASE_URL=postgresql://… python -m bench.bounces``
"""

from __future__ import annotations

import email
import time
from pathlib import Path

from bench._setup import ROOT, django_database, machine

CORPUS = ROOT.parent / "shared" / "bounce-corpus" / "emails"


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
    bounceparse.parse(files[0])
    return len(files), rate(bounceparse.parse, files), rate(email.message_from_bytes, files)


def ingestion(n: int) -> tuple[float, float]:
    from django.db import connection
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
    started = time.perf_counter()
    for data in raws:
        services.ingest(tenant=tenant, raw=data)
    product = n / (time.perf_counter() - started)
    assert BounceEvent.objects.count() == n
    assert Message.objects.filter(status=MessageStatus.BOUNCED).count() == n

    # Baseline: the same number of rows, one plain INSERT each, no parsing or attribution.
    with connection.cursor() as cursor:
        started = time.perf_counter()
        for i in range(n):
            cursor.execute(
                "INSERT INTO bounces_bounceevent (tenant_id, source, dedupe_key, kind, recipient,"
                " status, smtp_code, reason, hard, diagnostic, original_message_id, attributed_by,"
                " raw, raw_truncated, received_at, created_at)"
                " VALUES (%s, 'inbox', %s, 'bounce', %s, '5.1.1', '550', 'userunknown', true, '',"
                " '', '', %s, false, now(), now())",
                [tenant.pk, f"base{i}", f"p{n + i}@prospect.test", raws[i]],
            )
        baseline = n / (time.perf_counter() - started)
    return product, baseline


def main() -> None:
    count, parse_rate, bare_rate = parser()
    print(f"bounce benchmarks: {machine()}")
    print(f"  parser over {count} corpus files (one core)")
    print(f"    bounceparse.parse          {parse_rate:8.0f} msg/s   (target >= 2000)")
    print(f"    email.message_from_bytes   {bare_rate:8.0f} msg/s")
    print(f"    ratio parse/bare           {parse_rate / bare_rate:8.2f}")
    with django_database() as database:
        n = 2000
        product, baseline = ingestion(n)
        print(f"  ingestion of {n} bounces into {database}")
        print(f"    ingest (parse+match+record) {product:7.0f} bounces/s   (target >= 500)")
        print(f"    bare INSERT of the rows     {baseline:7.0f} rows/s")
        print(f"    ratio ingest/bare           {product / baseline:7.2f}")


if __name__ == "__main__":
    main()

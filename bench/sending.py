"""Messages per second through the whole sending pipeline against bare smtplib loops.

All sides send the same messages to the same local SMTP sink (aiosmtpd, STARTTLS + AUTH PLAIN),
in one run, rounds alternating:

- bare, a session per message: ``smtplib.SMTP`` connect, STARTTLS, login, sendmail, quit;
- bare over one session: connect, STARTTLS and login once, then sendmail for every message;
- pipeline (in this process, as the bare loops): ``message_create`` (validate, route,
  suppression look-up, store) for ``--batch`` messages per transaction, handed to the channel
  as one run as a campaign starting does (``one_run_per_channel``) → when it commits, the send
  task, in-process: its *run* claims and sends the channel's due messages one by one over one
  SMTP session (claim by conditional UPDATE, which also reads the suppression, blocked-domain
  and domain-limit look-ups → channel and throttle checks → MIME → guarded, verified-TLS SMTP,
  MAIL/RCPT/DATA pipelined as the sink offers PIPELINING → hand-over committed → content →
  outcome recorded, in the same statement as the claim of the next message);
- the same with one message per transaction (every run has one message: no session to share);
- with ``REDIS_URL`` set, the same through a real ``celery worker`` (``--workers`` processes,
  ``DEBUG=false``): this process creates, the worker sends; timed until the last is recorded.

The tenant has ``--suppressed`` addresses on its suppression list (none of them the recipients),
and the cost of the look-up every send makes is measured on its own too (``suppression_for``,
one indexed SELECT on (tenant, address)).

Rounds alternate so that drift affects both sides; the median of each is reported. A third
side measures what rolling limits cost: the same pipeline through a channel with sending limits
per minute, hour and 24 hours (each a rolling window, ``sending.quota``) that never fill, whose
24 hours already hold ``--window`` sends (10,000: Exchange Online's whole day), so every send
locks, prunes, counts and inserts in three windows.

    python -m bench.sending [--messages 200] [--rounds 3] [--batch 50] [--workers N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import smtplib
import ssl
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace

from bench._setup import django_database, machine, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--suppressed", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=50, help="messages per transaction (a run)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes of the benchmark's Celery worker (0: none; needs REDIS_URL)",
    )
    args = parser.parse_args()
    concurrency = args.workers if os.environ.get("REDIS_URL") else 0
    with django_database() as database:
        from django.conf import settings

        from msc_admin.devtls import make_certificates

        certs = make_certificates(Path(tempfile.mkdtemp(prefix="bench-certs-")))
        settings.MSC_EXTRA_CA_FILE = str(certs.ca_file)
        settings.MSC_OUTBOUND_ALLOW_PRIVATE = True
        from msc_admin.celery import app

        app.conf.task_always_eager = True
        with sink_process(certs) as sink:
            run(
                sink,
                certs,
                database,
                args.messages,
                args.rounds,
                args.suppressed,
                args.window,
                args.batch,
                concurrency,
            )


@contextmanager
def sink_process(certs) -> Iterator[SimpleNamespace]:
    """The SMTP sink in its own process, as a real server would be (and off our GIL)."""
    ready: multiprocessing.Queue = multiprocessing.Queue()
    stop = multiprocessing.Event()
    proc = multiprocessing.Process(target=_serve, args=(certs.trusted, ready, stop), daemon=True)
    proc.start()
    host, port = ready.get(timeout=30)
    try:
        yield SimpleNamespace(host=host, port=port)
    finally:
        stop.set()
        proc.join(10)


def _serve(cert, ready, stop) -> None:
    import logging

    from tests.mailservers import smtp_server

    # aiosmtpd logs every command at INFO: on the benchmark's console, and on its CPU.
    logging.getLogger("mail.log").setLevel(logging.WARNING)

    with smtp_server(mode="starttls", cert=cert, users={"bench": "pw"}) as sink:
        ready.put((sink.host, sink.port))
        stop.wait()


def baseline(sink, ca_file: str, n: int) -> float:
    context = ssl.create_default_context(cafile=ca_file)
    started = time.perf_counter()
    for i in range(n):
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = "rep@acme.test", f"p{i}@x.test", "Hello"
        mail.set_content("Hi there")
        with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
            client.starttls(context=context)
            client.login("bench", "pw")
            client.send_message(mail)
    return n / (time.perf_counter() - started)


def baseline_one_session(sink, ca_file: str, n: int) -> float:
    """The bare loop over one session: connect, STARTTLS and login once, then every message."""
    context = ssl.create_default_context(cafile=ca_file)
    started = time.perf_counter()
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
        client.starttls(context=context)
        client.login("bench", "pw")
        for i in range(n):
            mail = EmailMessage()
            mail["From"], mail["To"], mail["Subject"] = "rep@acme.test", f"p{i}@x.test", "Hello"
            mail.set_content("Hi there")
            client.send_message(mail)
    return n / (time.perf_counter() - started)


def pipeline(tenant, user, identity, n: int, batch: int = 1, cpu: list | None = None) -> float:
    """``message_create`` for each message, ``batch`` of them per transaction (a campaign
    step's or a bulk send's worth), handed to the channel as one run (``one_run_per_channel``);
    when it commits the run's task runs in this process and sends the batch over one session.
    Every message is recorded sent when this returns (checked). ``cpu`` gets (ours, our
    PostgreSQL backend's or None) CPU seconds per message: what other load disturbs least."""
    from django.db import connection, transaction

    from bench.bounces import _backend_cpu
    from msc_admin.celery import app
    from sending.models import Message, MessageStatus
    from sending.services import Draft, message_create, one_run_per_channel

    assert app.conf.task_always_eager, "the in-process pipeline sends in this process"
    sent = Message.objects.filter(tenant=tenant, status=MessageStatus.SENT)
    before = sent.count()
    pid = 0
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = int(cursor.fetchone()[0])
    server = _backend_cpu(pid) if pid else None
    ours = time.process_time()
    started = time.perf_counter()
    for first in range(0, n, batch):
        with transaction.atomic(), one_run_per_channel():  # as a campaign starting does
            for i in range(first, min(first + batch, n)):
                message_create(
                    tenant=tenant,
                    sender=user,
                    draft=Draft(
                        to_email=f"p{i}@x.test", subject="Hello", body="Hi there", identity=identity
                    ),
                )
    rate = n / (time.perf_counter() - started)
    if cpu is not None:
        after = _backend_cpu(pid) if server is not None else None
        theirs = (after - server) / n if after is not None and server is not None else None
        cpu.append(((time.process_time() - ours) / n, theirs))
    assert sent.count() == before + n, "not every message was sent by the time it returned"
    return rate


@contextmanager
def worker_process(certs, concurrency: int) -> Iterator[str]:
    """A real ``celery worker`` (prefork, ``concurrency`` processes) on the benchmark's database
    and the Redis of ``REDIS_URL``, as production runs it; yields its node name."""
    import socket
    import subprocess
    import sys

    from django.conf import settings
    from django.db import connection

    from bench._setup import ROOT
    from msc_admin.celery import app

    db = connection.settings_dict
    url = f"postgresql://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "MSC_OUTBOUND_ALLOW_PRIVATE": "true",
        "MSC_EXTRA_CA_FILE": str(certs.ca_file),
        # As production runs it: no query log, no debug pages.
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "MSC_SECRET_KEYS": ",".join(f"{kid}:{key}" for kid, key in settings.MSC_SECRET_KEYS),
        "ALLOWED_HOSTS": "localhost",
    }
    name = f"bench-{os.getpid()}"
    app.control.purge()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "msc_admin",
            "worker",
            "--loglevel=WARNING",
            f"--concurrency={concurrency}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"{name}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    node = f"{name}@{socket.gethostname()}"
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(destination=[node], timeout=0.5):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the benchmark's celery worker did not start")
        yield node
    finally:
        proc.terminate()
        proc.wait(30)


def through_worker(tenant, user, identity, n: int, batch: int) -> float:
    """The pipeline as deployed: ``message_create`` in transactions of ``batch`` messages, each
    enqueued to Redis on commit, sent by the worker; from the first create until the last is
    recorded sent."""
    from django.db import transaction

    from msc_admin.celery import app
    from sending.models import Message, MessageStatus
    from sending.services import Draft, message_create, one_run_per_channel

    before = Message.objects.filter(tenant=tenant, status=MessageStatus.SENT).count()
    app.conf.task_always_eager = False  # to the broker, for the worker (only here)
    try:
        started = time.perf_counter()
        for first in range(0, n, batch):
            with transaction.atomic(), one_run_per_channel():  # as a campaign starting does
                for i in range(first, min(first + batch, n)):
                    message_create(
                        tenant=tenant,
                        sender=user,
                        draft=Draft(
                            to_email=f"w{i}@x.test",
                            subject="Hello",
                            body="Hi there",
                            identity=identity,
                        ),
                    )
    finally:
        app.conf.task_always_eager = True
    deadline = time.monotonic() + 600
    sent = Message.objects.filter(tenant=tenant, status=MessageStatus.SENT)
    while sent.count() < before + n:
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not send every message within 10 minutes")
        time.sleep(0.02)  # polling the outcome, which is the measurement's end
    return n / (time.perf_counter() - started)


def suppression_check(tenant, n: int) -> float:
    """Seconds per look-up of the suppression list, half of them hits."""
    from sending.services.suppressions import suppression_for

    started = time.perf_counter()
    for i in range(n):
        suppression_for(tenant.pk, f"gone{i * 7}@x.test" if i % 2 else f"p{i}@x.test")
    return (time.perf_counter() - started) / n


def _limited(sink, window: int):
    """A second tenant whose team channel has rolling limits that never fill, its 24 hours
    already holding ``window`` sends."""
    from django.db import connection

    from accounts.models import Membership, Role, Tenant, User
    from channels import services
    from channels.kinds import Security, SmtpConfig
    from channels.models import Channel
    from sending.models import QuotaSlot, QuotaWindow

    limited = Tenant.objects.create(name="Bench limits", slug="bench-limits")
    user = User.objects.create_user("rep@limits.test", "x" * 16)
    Membership.objects.create(user=user, tenant=limited, role=Role.REP)
    admin = User.objects.create_user("admin@limits.test", "x" * 16)
    Membership.objects.create(user=admin, tenant=limited, role=Role.ADMIN)
    channel: Channel = services.channel_save_smtp(
        tenant=limited,
        actor=admin,
        owner=None,
        config=SmtpConfig(
            host=sink.host,
            port=sink.port,
            security=Security.STARTTLS,
            username="bench",
            per_minute=1_000_000,
            per_hour=1_000_000,
            per_day=1_000_000,
        ),
        password="pw",  # noqa: S106 - the local sink's throwaway login
        use_for_all_members=True,
    )
    start = time.time() - 23 * 3600
    QuotaSlot.objects.bulk_create(
        QuotaSlot(channel=channel, rule="day", at=start + i * 23 * 3600 / window)
        for i in range(window)
    )
    # The rule's counter row counts them, as reservations would have.
    QuotaWindow.objects.create(channel=channel, rule="day", window_start=time.time(), used=window)
    with connection.cursor() as cursor:  # as autovacuum would have, on a table in use
        cursor.execute("ANALYZE sending_quotaslot")
    return limited, user, services.identity_ensure_default(user=user, tenant=limited)


def run(
    sink,
    certs,
    database: str,
    n: int,
    rounds: int,
    suppressed: int = 0,
    window: int = 0,
    batch: int = 50,
    concurrency: int = 0,
) -> None:
    from django.db import connection

    from accounts.models import Membership, Role, Tenant, User
    from channels import services
    from channels.kinds import Security, SmtpConfig
    from channels.models import TeamSendingSettings
    from sending.models import Message, MessageStatus, QuotaSlot, Suppression, SuppressionReason

    tenant = Tenant.objects.create(name="Bench", slug="bench")
    user = User.objects.create_user("rep@acme.test", "x" * 16)
    Membership.objects.create(user=user, tenant=tenant, role=Role.REP)
    TeamSendingSettings.objects.create(tenant=tenant, throttling_enabled=False)
    admin = User.objects.create_user("admin@acme.test", "x" * 16)
    services.channel_save_smtp(
        tenant=tenant,
        actor=admin,
        owner=None,
        config=SmtpConfig(
            host=sink.host, port=sink.port, security=Security.STARTTLS, username="bench"
        ),
        password="pw",  # noqa: S106 - the local sink's throwaway login
        use_for_all_members=True,
    )
    identity = services.identity_ensure_default(user=user, tenant=tenant)
    Suppression.objects.bulk_create(
        Suppression(tenant=tenant, address=f"gone{i}@x.test", reason=SuppressionReason.HARD_BOUNCE)
        for i in range(suppressed)
    )
    limited, limited_user, limited_identity = _limited(sink, window)
    pipeline(tenant, user, identity, 5)  # warm-up
    pipeline(limited, limited_user, limited_identity, 5)
    ca = str(certs.ca_file)
    bare, bare_one, ours, single, rolling, worker = [], [], [], [], [], []
    cpu: list[tuple[float, float | None]] = []
    with worker_process(certs, concurrency) if concurrency else nullcontext() as node:
        for _ in range(rounds):
            bare.append(baseline(sink, ca, n))
            bare_one.append(baseline_one_session(sink, ca, n))
            ours.append(pipeline(tenant, user, identity, n, batch, cpu))
            single.append(pipeline(tenant, user, identity, n))
            rolling.append(pipeline(limited, limited_user, limited_identity, n, batch))
            if node:
                worker.append(through_worker(tenant, user, identity, n, batch))
    sent = Message.objects.filter(status=MessageStatus.SENT).count()
    expected = (2 + bool(worker)) * n * rounds + n * rounds + 10
    assert sent == expected, f"{sent} sent, not {expected}"
    slots = QuotaSlot.objects.filter(rule="day").count()
    assert slots == window + n * rounds + 5, f"{slots} sends counted in the 24 hours"
    b, b1 = statistics.median(bare), statistics.median(bare_one)
    p, p1, r = statistics.median(ours), statistics.median(single), statistics.median(rolling)
    w = statistics.median(worker) if worker else None
    check = statistics.median(suppression_check(tenant, 2000) for _ in range(rounds))
    looked_up = Suppression.objects.filter(tenant_id=tenant.pk, address="gone7@x.test").order_by()
    plan = " / ".join(line.strip() for line in looked_up.explain().splitlines()[:2])
    with connection.cursor() as cursor:
        started = time.perf_counter()
        for i in range(2000):
            cursor.execute(
                "SELECT 1 FROM sending_suppression WHERE tenant_id = %s AND address = %s",
                [tenant.pk, f"gone{i * 7}@x.test" if i % 2 else f"p{i}@x.test"],
            )
            cursor.fetchone()
        bare_check = (time.perf_counter() - started) / 2000
    share = check * p  # one look-up of its own per message, at compose time; the claim's is in it
    print(
        f"sending pipeline benchmark: {n} messages x {rounds} rounds, runs of {batch}, "
        f"{database}, {machine()}"
    )
    print(f"  bare smtplib loop, a session per message {b:8.1f} msg/s")
    print(f"  bare smtplib loop over one session       {b1:8.1f} msg/s")
    print(f"  msc-admin pipeline (runs of {batch:<3})        {p:8.1f} msg/s   (in one process)")
    print(f"  msc-admin, one message per transaction   {p1:8.1f} msg/s   (no run to share)")
    mine = statistics.median(c[0] for c in cpu) * 1000
    backend = [c[1] for c in cpu if c[1] is not None]
    server_ms = f", PostgreSQL's {statistics.median(backend) * 1000:.2f} ms" if backend else ""
    print(f"    CPU a message in runs of {batch}: ours {mine:.2f} ms{server_ms} (median of rounds)")
    print(f"  ratio pipeline/bare                      {p / b:8.2f}   (target >= 1.0)")
    print(f"  ratio pipeline/bare-one-session          {p / b1:8.2f}   (aim >= 0.5)")
    if w is not None:
        print(
            f"  through a Celery worker x{concurrency:<2}             {w:8.1f} msg/s   "
            f"(ratio {w / b:.2f}; creating in this process, sending in the worker's)"
        )
    print(
        f"  suppression look-up      {check * 1e6:8.0f} µs  ({suppressed:,} entries; one per "
        f"message at compose time = {100 * share:.1f} % of a send; the send's is in its claim)"
    )
    print(f"  bare SELECT of one row   {bare_check * 1e6:8.0f} µs  (plan: {plan})")
    print(f"  with 3 rolling limits    {r:8.1f} msg/s   ({window:,}+ sends in the 24 hours)")
    print(f"  ratio rolling/bare       {r / b:8.2f}   ({1000 / r - 1000 / p:+.2f} ms a message)")
    report(
        [
            {
                "benchmark": (
                    "sending pipeline to a local SMTP sink (STARTTLS + AUTH), in one process: "
                    f"message_create in transactions of {batch}, each one's run over one session"
                ),
                "product": f"{p:,.1f} msg/s (one message per transaction {p1:,.1f})",
                "baseline": f"bare smtplib loop, a session per message {b:,.1f} msg/s",
                "ratio": f"{p / b:.2f}",
                "target": "≥ 1.0" + (" (met)" if p / b >= 1.0 else " (not met)"),
            },
            {
                "benchmark": "the same against a bare loop over one session",
                "product": f"{p:,.1f} msg/s",
                "baseline": f"bare smtplib loop over one session {b1:,.1f} msg/s",
                "ratio": f"{p / b1:.2f}",
                "target": "≥ 0.5" + (" (met)" if p / b1 >= 0.5 else " (not met)"),
            },
            *(
                [
                    {
                        "benchmark": f"the same through a real Celery worker x{concurrency}",
                        "product": f"{w:,.1f} msg/s",
                        "baseline": f"bare smtplib loop, a session per message {b:,.1f} msg/s",
                        "ratio": f"{w / b:.2f}",
                        "target": "—",
                    }
                ]
                if w is not None
                else []
            ),
            {
                "benchmark": f"suppression look-up per send ({suppressed:,} entries)",
                "product": f"{check * 1e6:,.0f} µs, one per message (the send's is in its claim)",
                "baseline": f"bare SELECT {bare_check * 1e6:,.0f} µs; one send {1e6 / p:,.0f} µs",
                "ratio": f"{share:.3f}",
                "target": "one indexed look-up",
            },
            {
                "benchmark": (
                    "the same with rolling limits per minute, hour and 24 hours "
                    f"({window:,} sends already in the 24 hours)"
                ),
                "product": f"{r:,.1f} msg/s",
                "baseline": f"bare smtplib loop {b:,.1f} msg/s",
                "ratio": f"{r / b:.2f} ({1000 / r - 1000 / p:+.2f} ms a message)",
                "target": "—",
            },
        ]
    )


if __name__ == "__main__":
    main()

"""The fault suite: the real servers fail under the product, and it recovers by itself, loses no
message or bounce, and counts nothing twice.

- PostgreSQL restarts while a worker is sending;
- Redis restarts (its queue lost) while mail and contact imports are being written and sent;
- the SMTP server is down, then stalls, then answers 4xx for a while;
- the IMAP connection drops in the middle of a fetch;
- a worker killed mid-send: ``tests/sending/test_workers.py`` (the claim makes it
  "delivery uncertain", never a second delivery), and mid-scan: ``tests/bounces/test_inbox.py``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError, connections
from django.db.models import Sum
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from analytics.models import FeedKind, Notification, Rollup
from bounces import inbox
from bounces.models import BounceEvent
from channels import services as channel_services
from channels.models import Channel, Identity
from msc_admin.celery import app as celery_app
from msc_admin.devtls import Certificates
from sending import pipeline
from sending.models import Contact, ContactImport, ImportStatus, Message, MessageStatus
from tests.bounces.conftest import dovecot, dsn_for, mark_sent  # noqa: F401
from tests.mailservers import (
    ImapServer,
    SmtpServer,
    cutting_proxy,
    free_port,
    smtp_server,
    stalling_server,
)
from tests.sending.conftest import (
    RELAY_PASSWORD,
    RELAY_USER,
    gmail_channel,
    queue_message,
    relay_config,
)
from tests.workers import celery_worker, in_broker, log_of, node, wait_until_idle

IN_CI = bool(os.environ.get("CI"))


def _wait_for(condition, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except OperationalError:  # the database is coming back
            connections.close_all()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def _needs(*names: str) -> None:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        message = f"{', '.join(missing)} not set (bin/test sets them)"
        pytest.fail(message) if IN_CI else pytest.skip(message)


def restart_postgresql() -> None:
    _needs("MSC_TEST_PGBIN", "MSC_TEST_PGDATA")
    data = os.environ["MSC_TEST_PGDATA"]
    as_pg = shlex.split(os.environ.get("MSC_TEST_AS_PG", ""))
    log = str(Path(data).parent / "pg-restart.log")
    pg_ctl = os.path.join(os.environ["MSC_TEST_PGBIN"], "pg_ctl")
    subprocess.run(
        [*as_pg, pg_ctl, "-D", data, "-l", log, "-m", "fast", "-w", "restart"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )
    connections.close_all()


@contextmanager
def redis_down() -> Iterator[None]:
    """Stop the test Redis (without saving: its queue is lost) and start it again after."""
    url = urlparse(os.environ.get("REDIS_URL", ""))
    if not url.port:
        _needs("REDIS_URL")
    port = str(url.port)
    pidfile = os.environ.get("MSC_TEST_REDIS_PIDFILE") or str(
        Path(tempfile.gettempdir()) / f"msc-test-redis-{port}.pid"
    )
    client = redis.Redis(host="127.0.0.1", port=int(port))
    with suppress(redis.ConnectionError):  # it closes the connection as it goes
        client.shutdown(nosave=True)
    _wait_for(lambda: _redis_is_down(client), 10, "Redis to stop")
    try:
        yield
    finally:
        subprocess.run(
            [
                "redis-server",
                "--port",
                port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                "--pidfile",
                pidfile,
                "--dir",
                str(Path(pidfile).parent),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=30,
        )
        _wait_for(lambda: client.ping(), 10, "Redis to start")


def _redis_is_down(client: redis.Redis) -> bool:
    try:
        client.ping()
    except redis.ConnectionError:
        return True
    return False


def _ids(server: SmtpServer) -> Counter[str]:
    return Counter(
        str(message_from_bytes(m["data"])["Message-ID"]) for m in server.received.messages
    )


def _sent_counts(tenant: Tenant) -> tuple[int, int, int]:
    """Messages sent, the roll-ups' sent figure, and 'sent' feed entries: all three agree when
    nothing was counted twice."""
    rolled = Rollup.objects.filter(tenant=tenant).aggregate(n=Sum("sent"))["n"] or 0
    return (
        Message.objects.filter(tenant=tenant, status=MessageStatus.SENT).count(),
        rolled,
        Notification.objects.filter(tenant=tenant, kind=FeedKind.SENT).count(),
    )


def _sending_through(port: int, tenant: Tenant, admin: User, rep: User) -> Identity:
    """The team SMTP channel on a loopback relay's port, and the rep's identity that uses it."""
    relay = SmtpServer(host="localhost", port=port, received=None)  # type: ignore[arg-type]
    channel_services.channel_save_smtp(
        tenant=tenant,
        actor=admin,
        owner=None,
        config=relay_config(relay),
        password=RELAY_PASSWORD,
        use_for_all_members=True,
    )
    return channel_services.identity_ensure_default(user=rep, tenant=tenant)


@pytest.fixture
def _broker() -> Iterator[None]:
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    yield


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_postgresql_restarting_mid_sending_loses_and_repeats_nothing(
    _broker: None, acme: Tenant, admin_user: User, rep_user: User, certs: Certificates
) -> None:
    total = 24
    with smtp_server(
        mode="starttls", cert=certs.trusted, users={RELAY_USER: RELAY_PASSWORD}, data_delay=0.15
    ) as relay:
        identity = _sending_through(relay.port, acme, admin_user, rep_user)
        with celery_worker("pg-restart", beat=True, env={"MSC_REDISPATCH_SECONDS": "3"}):
            for n in range(total):
                queue_message(acme, rep_user, identity, to=f"p{n}@prospect.test")
            _wait_for(lambda: len(relay.received.messages) >= 4, 60, "the first deliveries")
            restart_postgresql()
            # The worker's connection broke under it; beat hands the rest over again.
            _wait_for(
                lambda: not Message.objects.filter(status=MessageStatus.QUEUED).exists(),
                120,
                "the queue to drain",
            )
            # A send that was in flight when the database went may still be claimed. Once the
            # worker has finished every send task it was given, no send is in flight: when the
            # lease is over (simulated here), the reconciler settles it without sending again.
            wait_until_idle("pg-restart", timeout=120)
            pipeline.reconcile_stuck(now=timezone.now() + pipeline.lease() + timedelta(seconds=1))
            _wait_for(
                lambda: (
                    not Message.objects.filter(
                        status__in=[MessageStatus.QUEUED, MessageStatus.SENDING]
                    ).exists()
                ),
                60,
                "every message to settle",
            )
            # Every task handed over again (beat re-dispatches after 3 s here) has run to the
            # end: a second delivery would have reached the relay by now.
            wait_until_idle("pg-restart", timeout=120)
    received = _ids(relay)
    assert max(received.values()) == 1, received.most_common(3)  # nothing delivered twice
    outcomes = Counter(Message.objects.values_list("status", flat=True))
    assert set(outcomes) <= {MessageStatus.SENT, MessageStatus.FAILED}, outcomes
    for message in Message.objects.all():
        if message.status == MessageStatus.SENT:
            assert received[message.message_id] == 1, message.to_email
        else:  # only "delivery uncertain" may fail, and it is said so, never resent
            assert message.uncertain and message.status_detail.startswith("Delivery uncertain")
    assert len(received) >= total - outcomes[MessageStatus.FAILED]  # nothing lost
    sent = outcomes[MessageStatus.SENT]
    assert _sent_counts(acme) == (sent, sent, sent)


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_redis_restarting_loses_no_mail_and_no_import(
    _broker: None,
    acme: Tenant,
    admin_user: User,
    rep_user: User,
    certs: Certificates,
    settings,
) -> None:
    with smtp_server(
        mode="starttls", cert=certs.trusted, users={RELAY_USER: RELAY_PASSWORD}
    ) as relay:
        identity = _sending_through(relay.port, acme, admin_user, rep_user)
        rep = Client()
        rep.force_login(rep_user)
        compose = {"identity": identity.pk, "to": "", "subject": "Hello", "body": "Hi there"}

        # 1. A task waiting in Redis when it restarts is lost with it; the message is not.
        queued = queue_message(acme, rep_user, identity, to="waiting@prospect.test")
        with redis_down():
            # 2. Written while Redis is down: the rep's send succeeds and the mail is kept.
            response = rep.post(reverse("sending:compose"), {**compose, "to": "down@prospect.test"})
            assert response.status_code == 302, response.content[:300]
            # So does a contact import: the upload is kept and goes to a worker later.
            upload = SimpleUploadedFile("leads.csv", b"email\nlee@prospect.test\n")
            response = rep.post(reverse("sending:contact_import"), {"file": upload})
            assert response.status_code == 302, response.content[:300]
            assert Client().get(reverse("health")).status_code == 503
        job = ContactImport.objects.get()
        assert job.status == ImportStatus.PENDING
        written = Message.objects.get(to_email="down@prospect.test")
        assert written.status == MessageStatus.QUEUED

        with celery_worker("redis-restart", beat=True, env={"MSC_REDISPATCH_SECONDS": "3"}):
            _wait_for(
                lambda: Message.objects.filter(status=MessageStatus.SENT).count() == 2,
                60,
                "both messages to go out",
            )
            _wait_for(
                lambda: ContactImport.objects.get().status == ImportStatus.DONE, 30, "the import"
            )
            assert Contact.objects.filter(email="lee@prospect.test").count() == 1
            # 3. And Redis restarting under a running worker: it notices, reconnects and carries on.
            connected = log_of("redis-restart").count("Connected to redis")
            with redis_down():
                _wait_for(
                    lambda: "Connection to broker lost" in log_of("redis-restart"),
                    30,
                    "the worker to notice Redis is gone",
                )
            _wait_for(
                lambda: log_of("redis-restart").count("Connected to redis") > connected,
                60,
                "the worker to reconnect",
            )
            rep.post(reverse("sending:compose"), {**compose, "to": "after@prospect.test"})
            _wait_for(
                lambda: Message.objects.filter(status=MessageStatus.SENT).count() == 3,
                90,
                "the message written after the restart",
            )
            wait_until_idle("redis-restart")

            # 4. A re-dispatch that comes while the first task still waits in the broker (late,
            # not lost) makes two tasks for one message; the claim lets one of them send. The
            # worker stops taking tasks meanwhile, so that both really wait side by side.
            worker = [node("redis-restart")]
            assert celery_app.control.cancel_consumer(
                "celery", destination=worker, reply=True, timeout=5
            )
            late = queue_message(acme, rep_user, identity, to="late@prospect.test")
            Message.objects.filter(pk=late.pk).update(
                dispatched_at=timezone.now()
                - timedelta(seconds=settings.MSC_REDISPATCH_SECONDS + 1)
            )
            assert pipeline.dispatch_due() == 1
            _wait_for(
                lambda: _tasks_for(late) >= 2, 10, "both tasks for the late message in the broker"
            )
            assert celery_app.control.add_consumer(
                "celery", destination=worker, reply=True, timeout=5
            )
            _wait_for(
                lambda: Message.objects.get(pk=late.pk).status == MessageStatus.SENT,
                60,
                "the late message to go out",
            )
            wait_until_idle("redis-restart")  # every one of its tasks has run to the end
    received = _ids(relay)
    assert sorted(received.values()) == [1, 1, 1, 1], received
    queued.refresh_from_db()
    assert received[queued.message_id] == 1 and received[late.message_id] == 1
    assert _sent_counts(acme) == (4, 4, 4)


def _tasks_for(message: Message) -> int:
    return sum(1 for headers in in_broker() if headers.get("argsrepr") == f"({message.pk},)")


@pytest.mark.django_db
def test_smtp_down_then_stalling_then_4xx_then_sent_once(
    acme: Tenant, admin_user: User, rep_user: User, certs: Certificates, settings
) -> None:
    settings.MSC_OUTBOUND_TIMEOUT = 2
    port = free_port()
    identity = _sending_through(port, acme, admin_user, rep_user)
    message = queue_message(acme, rep_user, identity)

    def attempt() -> Message:
        Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
        Channel.objects.filter(tenant=acme).update(backoff_until=None)
        pipeline.send_message(message.pk)
        message.refresh_from_db()
        return message

    details = []
    # Down: nothing listens on the port.
    assert attempt().status == MessageStatus.QUEUED
    details.append(message.status_detail)
    # Stalling: the server accepts and never greets; the attempt times out.
    with stalling_server(port):
        started = time.monotonic()
        assert attempt().status == MessageStatus.QUEUED
        assert time.monotonic() - started < 10
        details.append(message.status_detail)
    # Answering 4xx for a while, then accepting.
    replies = ["451 4.3.0 Try again later", "421 4.7.0 Too busy"]
    with smtp_server(
        mode="starttls",
        cert=certs.trusted,
        users={RELAY_USER: RELAY_PASSWORD},
        replies=replies,
        port=port,
    ) as relay:
        for _ in range(2):
            assert attempt().status == MessageStatus.QUEUED
            details.append(message.status_detail)
        assert attempt().status == MessageStatus.SENT
        pipeline.send_message(message.pk)  # a repeated task does nothing
    assert message.attempts == 5
    assert all(details), details  # each failure told the rep why, and that it will retry
    assert "451" in details[2] or "Try again" in details[2]
    assert len(relay.received.messages) == 1
    assert _sent_counts(acme) == (1, 1, 1)


@pytest.fixture
def scanned_mailbox(acme: Tenant, rep_user: User, dovecot: ImapServer) -> Channel:  # noqa: F811
    dovecot.add_user("rep@acme.test", "imap-token")
    channel = gmail_channel(acme, rep_user, token="imap-token")
    identity = channel_services.identity_ensure_default(user=rep_user, tenant=acme)
    identity.channel = channel
    identity.save()
    return channel


@pytest.mark.django_db
def test_imap_dropped_mid_fetch_resumes_and_counts_each_bounce_once(
    acme: Tenant,
    rep_user: User,
    scanned_mailbox: Channel,
    dovecot: ImapServer,  # noqa: F811
    settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    identity = Identity.objects.get(user=rep_user, is_default=True)
    sent = [
        mark_sent(queue_message(acme, rep_user, identity, to=f"p{n}@prospect.test"))
        for n in range(8)
    ]
    padding = "X-Padding: " + "x" * 3000 + "\n"  # each bounce a few kilobytes, like real ones
    bounces = [
        dsn_for(m, own_id=f"<b{m.pk}@mx>").replace(
            b"Return-Path", padding.encode() + b"Return-Path", 1
        )
        for m in sent
    ]
    dovecot.deliver("rep@acme.test", "imap-token", *bounces)
    monkeypatch.setattr(inbox, "BATCH", 2)
    with cutting_proxy(dovecot.host, dovecot.port) as proxy:
        settings.MSC_GMAIL_IMAP = f"{dovecot.host}:{proxy.port}"  # the name its certificate has
        proxy.cut_after = 16_000  # past sign-in and the first batches, before the end
        first = inbox.scan(scanned_mailbox.pk)
        assert proxy.cuts == 1
        assert not first.ok and "broke" in first.problem
        recorded = BounceEvent.objects.count()
        assert 0 < recorded < 8  # the batches read before the drop are kept

        proxy.cut_after = None
        second = inbox.scan(scanned_mailbox.pk)
        assert second.ok, second.problem
        third = inbox.scan(scanned_mailbox.pk)  # nothing new: nothing counted again
        assert third.ok and third.found == 0
    assert BounceEvent.objects.count() == 8
    assert Message.objects.filter(status=MessageStatus.BOUNCED).count() == 8
    bounced = Rollup.objects.filter(tenant=acme).aggregate(n=Sum("hard") + Sum("soft"))["n"]
    assert bounced == 8
    assert Notification.objects.filter(tenant=acme, kind=FeedKind.BOUNCED).count() == 8

"""The send of one message against a real SMTP relay on loopback: outcomes by server reply."""

from __future__ import annotations

import time
from datetime import timedelta
from email import message_from_bytes

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone, translation

from accounts.models import Tenant, User
from analytics.models import FeedKind, Notification
from channels import services as channel_services
from channels.models import BlockedDomain, Channel, ChannelStatus, Identity
from msc_admin.devtls import Certificates
from msc_admin.stored import read
from sending import pipeline
from sending.models import Hold, Message, MessageStatus
from sending.services import Draft, message_create
from tests.mailservers import SLOW_GREETING, SmtpServer, dripping_server, smtp_server
from tests.sending.conftest import RELAY_PASSWORD, RELAY_USER, queue_message, relay_config

pytestmark = pytest.mark.django_db


def _reload(message: Message) -> Message:
    message.refresh_from_db()
    return message


def test_a_message_is_sent_with_our_message_id_and_product_header(
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    relay: SmtpServer,
    django_capture_on_commit_callbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        message = queue_message(acme, rep_user, rep_identity)
    message = _reload(message)
    assert message.status == MessageStatus.SENT, message.status_detail
    assert message.sent_at is not None and message.attempts == 1
    assert message.status_detail.startswith("250")
    assert len(relay.received.messages) == 1
    received = relay.received.messages[0]
    assert received["from"] == "rep@acme.test" and received["to"] == ["pat@prospect.test"]
    parsed = message_from_bytes(received["data"])
    assert parsed["Message-ID"] == message.message_id
    assert parsed["X-MSC-Message"] and parsed["X-MSC-Message"] in message.message_id
    assert parsed["Subject"] == "Hello"


def test_a_second_send_of_the_same_message_does_nothing(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    message = queue_message(acme, rep_user, rep_identity)
    assert pipeline.send_message(message.pk) == "sent"
    assert pipeline.send_message(message.pk) == "skipped"
    assert len(relay.received.messages) == 1
    # The sender's live feed says so, once.
    (entry,) = Notification.objects.filter(user=rep_user)
    assert (entry.kind, entry.words) == (FeedKind.SENT, "Sent to pat@prospect.test: Hello")
    assert entry.link == "/outbox/sent/"


def test_450_is_retried_later_with_backoff_then_sent(
    scripted, acme: Tenant, rep_user: User
) -> None:
    server, identity = scripted(["450 4.2.1 Mailbox busy, try later"])
    message = queue_message(acme, rep_user, identity)
    before = timezone.now()
    assert pipeline.send_message(message.pk) == "held:retry"
    message = _reload(message)
    assert message.status == MessageStatus.QUEUED and message.hold == Hold.RETRY
    assert "450 4.2.1 Mailbox busy" in message.detail_text
    wait = (message.next_attempt_at - before).total_seconds()
    assert 45 <= wait <= 75  # 60 s with ±20 % jitter
    assert pipeline.send_message(message.pk) == "skipped"  # not due yet
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    assert pipeline.send_message(message.pk) == "sent"
    assert _reload(message).attempts == 2
    assert len(server.received.messages) == 1


def test_retries_are_bounded(scripted, acme: Tenant, rep_user: User, settings) -> None:
    settings.MSC_SEND_MAX_ATTEMPTS = 2
    _, identity = scripted(["451 4.3.0 Local problem"] * 3)
    message = queue_message(acme, rep_user, identity)
    assert pipeline.send_message(message.pk) == "held:retry"
    Message.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    assert pipeline.send_message(message.pk) == "failed"
    message = _reload(message)
    assert message.status == MessageStatus.FAILED
    assert message.detail_text.startswith("Gave up after 2 attempts: 451 4.3.0")


@pytest.mark.parametrize("reply", ["421 4.7.0 Too many connections", "450 4.7.1 Rate limited"])
def test_provider_pushback_backs_off_the_whole_channel(
    scripted, acme: Tenant, rep_user: User, reply: str
) -> None:
    _, identity = scripted([reply])
    first = queue_message(acme, rep_user, identity)
    second = queue_message(acme, rep_user, identity, to="sam@prospect.test")
    assert pipeline.send_message(first.pk) == "held:backoff"
    channel = Channel.objects.get(tenant=acme, owner__isnull=True)
    assert channel.backoff_until is not None and channel.backoff_until > timezone.now()
    assert channel.backoff_level == 1 and reply[:3] in channel.backoff_text
    second = _reload(second)
    assert second.hold == Hold.BACKOFF and second.next_attempt_at == channel.backoff_until
    assert "asked us to slow down" in second.detail_text
    # Even if a worker is handed the message early, the back-off holds it.
    Message.objects.filter(pk=second.pk).update(next_attempt_at=timezone.now())
    assert pipeline.send_message(second.pk) == "held:backoff"
    # The sender hears of the push-back once, not per held message.
    (entry,) = Notification.objects.filter(user=rep_user)
    assert entry.kind == FeedKind.THROTTLED and "asked us to slow down" in entry.words


def test_535_marks_the_channel_and_parks_its_mail_without_a_retry_storm(
    acme: Tenant,
    admin_user: User,
    rep_user: User,
    certs: Certificates,
    django_capture_on_commit_callbacks,
) -> None:
    with smtp_server(mode="starttls", cert=certs.trusted, users={RELAY_USER: "changed"}) as server:
        channel = channel_services.channel_save_smtp(
            tenant=acme,
            actor=admin_user,
            owner=None,
            config=relay_config(server),
            password=RELAY_PASSWORD,
            use_for_all_members=True,
        )
        identity = channel_services.identity_ensure_default(user=rep_user, tenant=acme)
        first = queue_message(acme, rep_user, identity)
        second = queue_message(acme, rep_user, identity, to="sam@prospect.test")
        assert pipeline.send_message(first.pk) == "held:auth"
        channel.refresh_from_db()
        assert channel.status == ChannelStatus.NEEDS_ATTENTION
        assert channel.status_text.startswith("Authentication unsuccessful (535")
        for message in (_reload(first), _reload(second)):
            assert message.status == MessageStatus.QUEUED and message.hold == Hold.AUTH
            assert message.next_attempt_at is None
        assert pipeline.dispatch_due() == 0
        assert pipeline.send_message(second.pk) == "skipped"
        assert len(server.received.auth_attempts) == 1  # one try, no storm
        # The team channel's admins are told once; the rep's feed does not carry it.
        told = Notification.objects.filter(kind=FeedKind.CHANNEL)
        assert list(told.values_list("user", flat=True)) == [admin_user.pk]
        assert read(told.get().text) == "Team channel: Custom SMTP needs attention."
        assert told.get().link == "/channels/team/"
        channel_services.channel_mark_needs_attention(channel=channel, message="Still failing")
        assert told.count() == 1

        # Re-authenticate and save: the held mail goes.
        server_users = {RELAY_USER: "changed"}
        channel_services.channel_save_smtp(
            tenant=acme,
            actor=admin_user,
            owner=None,
            config=relay_config(server),
            password=server_users[RELAY_USER],
            use_for_all_members=True,
        )
        with django_capture_on_commit_callbacks(execute=True):  # it enqueues after commit
            assert pipeline.dispatch_due() == 2
        assert {_reload(first).status, _reload(second).status} == {MessageStatus.SENT}
        assert len(server.received.messages) == 2


def test_550_fails_with_the_servers_text(scripted, acme: Tenant, rep_user: User) -> None:
    server, identity = scripted(["550 5.1.1 <pat@prospect.test>: Recipient address rejected"])
    message = queue_message(acme, rep_user, identity)
    assert pipeline.send_message(message.pk) == "failed"
    message = _reload(message)
    assert message.status == MessageStatus.FAILED and message.smtp_code == "550"
    # A sentence in the reader's language around the server's words, kept as they were said.
    words = "550 5.1.1 <pat@prospect.test>: Recipient address rejected"
    assert message.detail_text == f"The receiving server refused it: “{words}”"
    with translation.override("pt-br"):
        assert message.detail_text == f"O servidor de destino o recusou: “{words}”"
    assert message.can_retry
    assert server.received.messages == []
    (entry,) = Notification.objects.filter(user=rep_user)
    assert entry.kind == FeedKind.FAILED and entry.link == "/outbox/failed/"
    assert (
        entry.words == f"Not sent to pat@prospect.test: The receiving server refused it: “{words}”"
    )


def test_a_dead_server_is_a_temporary_failure(
    acme: Tenant, admin_user: User, rep_user: User
) -> None:
    from tests.mailservers import free_port

    config = relay_config(SmtpServer(host="localhost", port=free_port(), received=None))  # type: ignore[arg-type]
    channel_services.channel_save_smtp(
        tenant=acme,
        actor=admin_user,
        owner=None,
        config=config,
        password="x",
        use_for_all_members=True,
    )
    identity = channel_services.identity_ensure_default(user=rep_user, tenant=acme)
    message = queue_message(acme, rep_user, identity)
    assert pipeline.send_message(message.pk) == "held:retry"
    message = _reload(message)
    assert "Connection refused" in message.detail_text
    assert message.attempts == 1 and message.handed_over_at is None


def test_a_server_dripping_its_greeting_is_retried_with_the_deadline_named(
    acme: Tenant, admin_user: User, rep_user: User, settings
) -> None:
    settings.MSC_OUTBOUND_TIMEOUT = 1
    settings.MSC_OUTBOUND_DEADLINE = 2
    with dripping_server(SLOW_GREETING, every=0.5) as server:
        config = relay_config(SmtpServer(host=server.host, port=server.port, received=None))  # type: ignore[arg-type]
        channel_services.channel_save_smtp(
            tenant=acme,
            actor=admin_user,
            owner=None,
            config=config,
            password=RELAY_PASSWORD,
            use_for_all_members=True,
        )
        identity = channel_services.identity_ensure_default(user=rep_user, tenant=acme)
        message = queue_message(acme, rep_user, identity)
        started = time.monotonic()
        assert pipeline.send_message(message.pk) == "held:retry"
        took = time.monotonic() - started
    assert took < 3, took
    message = _reload(message)
    assert (message.status, message.hold) == (MessageStatus.QUEUED, Hold.RETRY)
    assert message.detail_text.startswith(
        "Temporary problem: the server did not finish the conversation within 2 s."
    )
    assert message.attempts == 1 and message.handed_over_at is None
    assert message.next_attempt_at is not None and message.next_attempt_at > timezone.now()


def test_line_breaks_in_header_input_are_refused_before_any_connection(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    with pytest.raises(ValidationError, match="line break"):
        queue_message(acme, rep_user, rep_identity, subject="Hi\r\nBcc: everyone@example.com")
    with pytest.raises(ValidationError):
        queue_message(acme, rep_user, rep_identity, to="pat@prospect.test\nBcc: x@example.com")
    # A value that got into the database some other way is still refused at send time.
    message = queue_message(acme, rep_user, rep_identity)
    Message.objects.filter(pk=message.pk).update(from_name="Rick\nBcc: all@example.com")
    assert pipeline.send_message(message.pk) == "failed"
    assert "line break" in _reload(message).detail_text
    assert relay.received.auth_attempts == [] and relay.received.messages == []


def test_blocked_domains_fail_with_a_clear_status(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    BlockedDomain.objects.create(tenant=acme, domain="prospect.test")
    message = queue_message(acme, rep_user, rep_identity, to="pat@mail.prospect.test")
    assert pipeline.send_message(message.pk) == "failed"
    message = _reload(message)
    assert message.detail_text == (
        "Not sent: prospect.test is on your team's list of blocked domains."
    )
    assert relay.received.messages == []


@pytest.mark.django_db(
    transaction=True
)  # dispatch_due enqueues after commit, in autocommit as beat runs it
def test_scheduled_mail_goes_when_due(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    later = timezone.now() + timedelta(hours=2)
    message = message_create(
        tenant=acme,
        sender=rep_user,
        draft=Draft(
            to_email="pat@prospect.test",
            subject="Later",
            body="b",
            identity=rep_identity,
            send_at=later,
        ),
    )
    assert message.status == MessageStatus.SCHEDULED
    assert pipeline.dispatch_due() == 0
    Message.objects.filter(pk=message.pk).update(scheduled_at=timezone.now())
    assert pipeline.dispatch_due() == 1  # eager in tests: the task ran
    assert _reload(message).status == MessageStatus.SENT


def test_abandoned_claims_are_reconciled_never_resent(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    before = queue_message(acme, rep_user, rep_identity)
    after = queue_message(acme, rep_user, rep_identity, to="sam@prospect.test")
    long_ago = timezone.now() - pipeline.lease() - timedelta(seconds=1)
    Message.objects.filter(pk=before.pk).update(status=MessageStatus.SENDING, claimed_at=long_ago)
    Message.objects.filter(pk=after.pk).update(
        status=MessageStatus.SENDING, claimed_at=long_ago, handed_over_at=long_ago
    )
    assert pipeline.reconcile_stuck() == (1, 1)
    before, after = _reload(before), _reload(after)
    assert before.status == MessageStatus.QUEUED and not before.uncertain
    assert after.status == MessageStatus.FAILED and after.uncertain
    assert after.detail_text.startswith("Delivery uncertain")
    (entry,) = Notification.objects.filter(user=rep_user, kind=FeedKind.FAILED)
    assert entry.words.startswith("Not sent to sam@prospect.test? Delivery uncertain")
    assert pipeline.reconcile_stuck() == (0, 0)  # told once
    assert Notification.objects.filter(kind=FeedKind.FAILED).count() == 1


def test_a_requeued_message_is_due_at_once_even_when_the_lease_is_judged_later(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    """A reconcile run told of a later moment (a lease taken as over) must not park what it
    requeues until that moment: it is due now, and the next dispatch hands it over."""
    message = queue_message(acme, rep_user, rep_identity)
    Message.objects.filter(pk=message.pk).update(
        status=MessageStatus.SENDING, claimed_at=timezone.now()
    )
    later = timezone.now() + pipeline.lease() + timedelta(seconds=1)
    assert pipeline.reconcile_stuck(now=later) == (1, 0)
    message = _reload(message)
    assert message.status == MessageStatus.QUEUED
    assert message.next_attempt_at <= timezone.now()


def test_no_route_is_a_clear_error(acme: Tenant, rep_user: User) -> None:
    identity = channel_services.identity_ensure_default(user=rep_user, tenant=acme)
    with pytest.raises(ValidationError, match="No channel yet"):
        queue_message(acme, rep_user, identity)


def test_an_unexpected_error_is_retried_not_left_claimed(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer, settings
) -> None:
    settings.MSC_EXTRA_CA_FILE = "/nonexistent/ca.pem"
    message = queue_message(acme, rep_user, rep_identity)
    assert pipeline.send_message(message.pk) == "held:retry"
    message = _reload(message)
    assert message.status == MessageStatus.QUEUED and message.hold == Hold.RETRY
    assert "Internal error before sending (FileNotFoundError" in message.detail_text
    assert relay.received.messages == []

"""A run of one channel's messages goes over one SMTP session (RSET only after a transaction
that was cut short), and
every guarantee of the one-message send still holds: one claim each, the hand-over recorded,
outcomes written only under the claim, each message delivered once even when the connection
drops mid-run."""

from __future__ import annotations

import itertools
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Tenant, User
from channels import services as channel_services
from channels.kinds import ChannelKind
from channels.models import Channel, Identity, TeamSendingSettings
from msc_admin import enqueue
from msc_admin.devtls import Certificates
from sending import pipeline, services
from sending.models import (
    Campaign,
    CampaignStep,
    Contact,
    Hold,
    Message,
    MessageStatus,
    Template,
)
from tests.mailservers import SmtpServer, smtp_server
from tests.sending.conftest import gmail_channel, queue_message, route_identity

pytestmark = pytest.mark.django_db(transaction=True)


def _queue(tenant: Tenant, user: User, identity: Identity, n: int) -> list[Message]:
    """Queued and due, their tasks not run (the test runs the worker's side itself)."""
    with mock.patch("msc_admin.enqueue.after_commit"):
        return [queue_message(tenant, user, identity, to=f"p{i}@prospect.test") for i in range(n)]


def _delivered(relay: SmtpServer) -> list[str]:
    """The recipients of what the relay accepted, in order."""
    return [entry["to"][0] for entry in relay.received.messages]


def test_a_run_sends_the_channels_due_messages_over_one_session(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    messages = _queue(acme, rep_user, rep_identity, 12)
    assert pipeline.send_run(messages[0].pk) == "sent"
    assert _delivered(relay) == [f"p{i}@prospect.test" for i in range(12)]
    assert len(relay.received.auth_attempts) == 1  # one TCP + TLS + AUTH for all twelve
    # Each transaction ended with the reply to its content: the server reset it, no RSET.
    assert relay.received.resets == 0
    rows = Message.objects.filter(pk__in=[m.pk for m in messages])
    assert {m.status for m in rows} == {MessageStatus.SENT}
    assert all(m.attempts == 1 and m.handed_over_at and m.claim_token for m in rows)
    # Each went with its own Message-ID; a second task for one of them finds it sent.
    ids = {message_from_bytes(e["data"])["Message-ID"] for e in relay.received.messages}
    assert ids == {m.message_id for m in rows}
    assert pipeline.send_run(messages[5].pk) == "skipped"
    assert len(relay.received.messages) == 12


def test_a_transaction_refused_before_its_content_is_reset_before_the_next(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    assert relay.handler is not None
    relay.handler.refused.add("p1@prospect.test")
    messages = _queue(acme, rep_user, rep_identity, 4)
    pipeline.send_run(messages[0].pk)
    # The refusal at RCPT TO left the transaction open: the next message RSETs it first and
    # goes over the same session.
    assert relay.received.resets == 1
    assert _delivered(relay) == ["p0@prospect.test", "p2@prospect.test", "p3@prospect.test"]
    assert len(relay.received.auth_attempts) == 1
    refused = Message.objects.get(pk=messages[1].pk)
    assert refused.status == MessageStatus.FAILED and "5.1.1" in refused.detail_text
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 3


def test_each_message_of_a_run_is_claimed_on_its_own(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    messages = _queue(acme, rep_user, rep_identity, 3)
    with CaptureQueriesContext(connection) as queries:
        pipeline.send_run(messages[0].pk)
    claims = [q["sql"] for q in queries.captured_queries if "handed_over_at = NULL" in q["sql"]]
    # The first by its id, each next one by the channel's queue, one statement each (which
    # also reads the message, its channel and campaign).
    assert len(claims) == 4  # the last finds none
    assert sum("FOR UPDATE SKIP LOCKED" in sql for sql in claims) == 3
    assert len({m.claim_token for m in Message.objects.all()}) == 3


def test_the_session_is_replaced_after_its_message_cap(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer, settings
) -> None:
    settings.MSC_SEND_SESSION_MESSAGES = 5
    messages = _queue(acme, rep_user, rep_identity, 12)
    pipeline.send_run(messages[0].pk)
    # A run ends at the cap: five went, the rest wait for the next run (their own tasks).
    assert len(relay.received.messages) == 5
    pipeline.send_run(messages[5].pk)
    pipeline.send_run(messages[10].pk)
    assert len(relay.received.messages) == 12
    assert len(relay.received.auth_attempts) == 3
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 12


def test_a_run_stops_at_a_held_message_and_leaves_the_rest_queued(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    messages = _queue(acme, rep_user, rep_identity, 6)
    assert relay.handler is not None
    relay.handler.replies.extend(["250 ok", "250 ok", "421 4.7.0 Try again later"])
    pipeline.send_run(messages[0].pk)
    # The third was pushed back (the channel waits); nothing after it was claimed.
    assert _delivered(relay) == ["p0@prospect.test", "p1@prospect.test"]
    statuses = list(Message.objects.order_by("pk").values_list("status", flat=True))
    assert statuses == [MessageStatus.SENT] * 2 + [MessageStatus.QUEUED] * 4
    assert Message.objects.get(pk=messages[2].pk).attempts == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
def test_a_connection_dropped_mid_run_delivers_each_message_once(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer, pipelining: bool
) -> None:
    """The server hangs up after accepting the 4th message: the 5th goes over a new session.
    It breaks the connection when the 8th message's content has arrived: that one may have
    been delivered, so it is flagged uncertain and never resent; the run goes on over a new
    session with the rest. The same whether the server offers PIPELINING or not."""
    assert relay.handler is not None
    relay.handler.pipelining = pipelining
    relay.handler.close_after.add(4)
    relay.handler.cut_at.add(8)
    messages = _queue(acme, rep_user, rep_identity, 10)
    pipeline.send_run(messages[0].pk)
    delivered = _delivered(relay)
    expected = [f"p{i}@prospect.test" for i in range(10) if i != 7]
    assert delivered == expected  # each once, in order, none twice
    cut = Message.objects.get(pk=messages[7].pk)
    assert cut.status == MessageStatus.FAILED and cut.uncertain, cut.detail_text
    assert "may have been delivered" in cut.detail_text
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 9
    assert Message.objects.filter(attempts__gt=1).count() == 0
    assert len(relay.received.auth_attempts) == 3  # the first session and two new ones
    # Nothing is left to resend.
    assert pipeline.dispatch_due() == 0


def test_gmail_reuses_its_xoauth2_session(
    acme: Tenant, rep_user: User, certs: Certificates, settings
) -> None:
    with smtp_server(mode="starttls", cert=certs.trusted, tokens={"good-token"}) as gmail:
        settings.MSC_GMAIL_SMTP = f"localhost:{gmail.port}"
        identity = route_identity(acme, rep_user, gmail_channel(acme, rep_user))
        TeamSendingSettings.objects.filter(tenant=acme).update(throttling_enabled=False)
        messages = _queue(acme, rep_user, identity, 3)
        assert pipeline.send_run(messages[0].pk) == "sent"
    assert gmail.received.auth_attempts == [("XOAUTH2", "rep@acme.test")]
    assert len(gmail.received.messages) == 3


@contextmanager
def _graph(certs: Certificates) -> Iterator[list[int]]:
    """A stand-in for Graph's sendMail over HTTPS with keep-alive; yields, per request, the
    number of the connection it came on."""
    seen: list[int] = []
    connections = itertools.count(1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection_number = next(connections)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append(self.connection_number)
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certs.trusted[0]), str(certs.trusted[1]))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        seen.append(httpd.server_address[1])  # the first entry is the port; requests follow
        yield seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_graph_sends_of_a_run_share_one_connection(
    acme: Tenant, rep_user: User, certs: Certificates, settings, monkeypatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certs.ca_file))  # requests trusts the test CA
    channel = gmail_channel(acme, rep_user, token="graph-token")
    Channel.objects.filter(pk=channel.pk).update(
        kind=ChannelKind.EXCHANGE_ONLINE, config={"provider": "microsoft", "uid": "m-1"}
    )
    channel.refresh_from_db()
    identity = route_identity(acme, rep_user, channel)
    with _graph(certs) as seen:
        settings.MSC_GRAPH_URL = f"https://localhost:{seen.pop(0)}"
        messages = _queue(acme, rep_user, identity, 3)
        assert pipeline.send_run(messages[0].pk) == "sent"
        # A message sent on its own (no run) opens its own connection.
        alone = _queue(acme, rep_user, identity, 1)[0]
        assert pipeline.send_message(alone.pk) == "sent"
    assert seen == [1, 1, 1, 2]
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 4


def test_a_campaign_starting_hands_its_channel_one_run_not_a_task_per_person(
    acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer, settings
) -> None:
    settings.MSC_SEND_SESSION_MESSAGES = 4
    intro = Template.objects.create(
        tenant=acme, owner=rep_user, name="Intro", subject="Hi", body="Hi"
    )
    campaign = Campaign.objects.create(
        tenant=acme, owner=rep_user, name="Q4", identity=rep_identity
    )
    CampaignStep.objects.create(campaign=campaign, template=intro, position=1)
    contacts = [
        Contact.objects.create(tenant=acme, owner=rep_user, email=f"p{i}@prospect.test")
        for i in range(9)
    ]
    services.campaign_enroll(campaign=campaign, contacts=contacts)
    handed: list[int] = []
    real = enqueue.after_commit

    def counted(task: object, *args: object, **kwargs: object) -> None:
        handed.append(int(args[0]))  # type: ignore[call-overload]
        real(task, *args, **kwargs)  # type: ignore[arg-type]

    with mock.patch("msc_admin.enqueue.after_commit", counted):
        services.campaign_start(campaign=campaign)
    # Nine people, runs of at most four: three tasks, each the first of its four.
    first_ids = sorted(Message.objects.order_by("pk").values_list("pk", flat=True))[::4]
    assert sorted(handed) == first_ids
    assert sorted(_delivered(relay)) == sorted(c.email for c in contacts)
    assert len(relay.received.auth_attempts) == 3
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 9


def test_a_run_goes_on_past_a_message_held_by_its_receiving_domains_cap(
    acme: Tenant, admin_user: User, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    channel_services.domain_cap_add(
        tenant=acme, actor=admin_user, limit=1, period="hour", provider="google", domains=[]
    )
    with mock.patch("msc_admin.enqueue.after_commit"):
        to = ["g0@gmail.com", "g1@gmail.com", "pat@prospect.test", "lee@prospect.test"]
        messages = [queue_message(acme, rep_user, rep_identity, to=address) for address in to]
    assert pipeline.send_run(messages[0].pk) == "sent"
    # The second Gmail address waits for the cap; the channel's other mail went on in the run.
    assert _delivered(relay) == ["g0@gmail.com", "pat@prospect.test", "lee@prospect.test"]
    held = Message.objects.get(pk=messages[1].pk)
    assert (held.status, held.hold) == (MessageStatus.QUEUED, Hold.DOMAIN_CAP)
    assert len(relay.received.auth_attempts) == 1

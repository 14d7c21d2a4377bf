"""Reading mailboxes through the Gmail API and Microsoft Graph (faked at the HTTP boundary,
tests/bounces/mailapi.py): the same ledger as by IMAP, spam and junk included, read-only,
resumable, size-capped before download, counted once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse

from accounts.models import Role, Tenant, User
from bounces import inbox, reading, services
from bounces.models import BounceEvent, InboxCursor, ResponseEvent
from channels import services as channel_services
from channels.kinds import ChannelKind
from channels.models import Channel, ChannelAuditEvent, ChannelStatus
from sending.models import Message
from tests.bounces.conftest import arf_for, dsn_for, mark_sent, reply_to
from tests.bounces.mailapi import FakeGmail, FakeGraph
from tests.factories import MembershipFactory, TenantFactory
from tests.mailservers import ImapServer
from tests.sending.conftest import gmail_channel, queue_message

pytestmark = pytest.mark.django_db

TOKEN = "mailbox-token"
ORDINARY = b"""From: Pat Prospect <pat@prospect.test>
To: rep@acme.test
Subject: Lunch
Message-ID: <ordinary-1@prospect.test>
Date: Mon, 23 Nov 2026 09:00:00 +0000

See you at noon.
"""


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def gmail_api(mocked: responses.RequestsMock) -> Iterator[FakeGmail]:
    fake = FakeGmail(TOKEN)
    fake.install(mocked)
    yield fake
    assert fake.writes == []  # read-only: nothing marked, moved or deleted


@pytest.fixture
def graph(mocked: responses.RequestsMock) -> Iterator[FakeGraph]:
    fake = FakeGraph(TOKEN)
    fake.install(mocked)
    yield fake
    assert fake.writes == []


def _exchange(
    tenant: Tenant,
    owner: User,
    *,
    reading: str = "",
    scopes: str = "User.Read Mail.Send Mail.Read offline_access",
) -> Channel:
    channel = gmail_channel(tenant, owner, token=TOKEN)
    Channel.objects.filter(pk=channel.pk).update(
        kind=ChannelKind.EXCHANGE_ONLINE,
        config={"provider": "microsoft", "uid": "m-1", "reading": reading, "scopes": scopes},
    )
    channel.refresh_from_db()
    return channel


def _mailbox(tenant: Tenant, owner: User, path: str) -> Channel:
    if path == "graph":
        channel = _exchange(tenant, owner)
    else:
        channel = gmail_channel(
            tenant, owner, token=TOKEN, reading="imap" if path == "imap" else "api"
        )
    identity = channel_services.identity_ensure_default(user=owner, tenant=tenant)
    identity.channel = channel
    identity.save()
    return channel


def _sent(tenant: Tenant, owner: User, to: str) -> Message:
    identity = channel_services.identity_ensure_default(user=owner, tenant=tenant)
    return mark_sent(queue_message(tenant, owner, identity, to=to))


def _ledger(tenant: Tenant) -> dict[str, Any]:
    """What a scan recorded, without ids: the same mail gives the same ledger on every path."""
    bounces = sorted(
        (e.recipient, e.kind, e.status, e.reason, e.hard, e.attributed_by,
         e.message.to_email if e.message else None)
        for e in BounceEvent.objects.filter(tenant=tenant).select_related("message")
    )  # fmt: skip
    responses_ = sorted(
        (e.kind, e.recipient, e.attributed_by, e.message.to_email if e.message else None)
        for e in ResponseEvent.objects.filter(tenant=tenant).select_related("message")
    )
    statuses = sorted(Message.objects.filter(tenant=tenant).values_list("to_email", "status"))
    return {"bounces": bounces, "responses": responses_, "messages": statuses}


def test_the_same_mail_gives_the_same_ledger_by_imap_through_the_gmail_api_and_graph(
    dovecot: ImapServer, gmail_api: FakeGmail, graph: FakeGraph
) -> None:
    """IMAP reads the Inbox only, so there everything is delivered to the Inbox; through the
    APIs half of it is filed to Spam / Junk Email, and all of it is still found."""
    ledgers = {}
    for path in ("imap", "gmail", "graph"):
        tenant = TenantFactory(name=f"Tenant {path}", slug=f"t-{path}")
        owner = MembershipFactory(tenant=tenant, role=Role.REP, user__email=f"rep@{path}.test").user
        channel = _mailbox(tenant, owner, path)
        gone = _sent(tenant, owner, "gone@prospect.test")
        filtered = _sent(tenant, owner, "filtered@prospect.test")
        annoyed = _sent(tenant, owner, "annoyed@prospect.test")
        keen = _sent(tenant, owner, "keen@prospect.test")
        away = _sent(tenant, owner, "away@prospect.test")
        # (message, filed to spam by the provider)
        mail = [
            (ORDINARY, False),
            (dsn_for(gone, own_id="<b1@mx.test>"), False),
            (dsn_for(filtered, own_id="<b2@mx.test>", crlf=True), True),
            (arf_for(annoyed), True),
            (reply_to(keen), False),
            (reply_to(away, own_id="<ooo-1@prospect.test>", auto=True), True),
            (dsn_for(None, recipient="stranger@far.test", own_id="<b3@mx.test>"), True),
        ]
        if path == "imap":
            dovecot.add_user(owner.email, TOKEN)
            dovecot.deliver(owner.email, TOKEN, *[raw for raw, _ in mail])
        for raw, spam in mail:
            if path == "gmail":
                gmail_api.deliver(raw, label="SPAM" if spam else "INBOX")
            elif path == "graph":
                graph.deliver(raw, folder="junkemail" if spam else "inbox")
        report = inbox.scan(channel.pk)
        assert report.ok, report.problem
        assert (report.read, report.found, report.complaints, report.replies) == (7, 3, 1, 1)
        assert report.auto_replies == 1
        ledgers[path] = _ledger(tenant)
    assert ledgers["imap"]["bounces"] and ledgers["imap"]["responses"]
    assert ledgers["gmail"] == ledgers["imap"]
    assert ledgers["graph"] == ledgers["imap"]
    # Each provider was asked for both folders, with GET only (the fixtures check the verbs).
    assert any("labelIds=SPAM" in path for _, path in gmail_api.requests)
    assert any("/mailFolders/junkemail/" in path for _, path in graph.requests)


def test_gmail_is_read_from_its_history_after_the_first_scan(
    acme: Tenant, rep_user: User, gmail_api: FakeGmail
) -> None:
    channel = _mailbox(acme, rep_user, "gmail")
    first = _sent(acme, rep_user, "one@prospect.test")
    gmail_api.deliver(dsn_for(first, own_id="<b1@m>"))
    assert inbox.scan(channel.pk).found == 1
    cursors = dict(InboxCursor.objects.filter(channel=channel).values_list("folder", "token"))
    assert cursors == {"INBOX": str(gmail_api.history_id), "SPAM": str(gmail_api.history_id)}

    second = _sent(acme, rep_user, "two@prospect.test")
    gmail_api.deliver(dsn_for(second, own_id="<b2@m>"), label="SPAM")
    gmail_api.requests.clear()
    report = inbox.scan(channel.pk)
    assert (report.read, report.found, report.duplicates) == (1, 1, 0)
    listed = [path.partition("?")[0] for _, path in gmail_api.requests]
    assert "/gmail/v1/users/me/history" in listed and "/gmail/v1/users/me/messages" not in listed
    assert InboxCursor.objects.get(channel=channel, folder="SPAM").token == str(
        gmail_api.history_id
    )


@pytest.mark.parametrize("path", ["gmail", "graph"])
def test_a_scan_killed_mid_way_resumes_from_the_stored_position(
    acme: Tenant,
    rep_user: User,
    gmail_api: FakeGmail,
    graph: FakeGraph,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    channel = _mailbox(acme, rep_user, path)
    sent = [_sent(acme, rep_user, f"p{i}@prospect.test") for i in range(5)]
    start = datetime.now(UTC) - timedelta(minutes=10)
    for i, message in enumerate(sent):
        raw, at = dsn_for(message, own_id=f"<b{i}@m>"), start + timedelta(minutes=i)
        if path == "gmail":
            gmail_api.deliver(raw, received=at)
        else:
            graph.deliver(raw, received=at)
    monkeypatch.setattr(reading, "PAGE", 2)
    real_ingest = services.ingest_many
    calls = {"n": 0}

    def dies_in_the_second_page(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise SystemExit("worker killed")  # not an Exception: nothing in the scan catches it
        return real_ingest(**kwargs)

    monkeypatch.setattr(services, "ingest_many", dies_in_the_second_page)
    with pytest.raises(SystemExit):
        inbox.scan(channel.pk)
    assert BounceEvent.objects.count() == 2
    folder = "INBOX" if path == "gmail" else "inbox"
    stored = InboxCursor.objects.get(channel=channel, folder=folder).token
    assert stored  # the first page's position was kept
    assert not inbox.is_running(channel.pk)

    monkeypatch.setattr(services, "ingest_many", real_ingest)
    report = inbox.scan(channel.pk)
    assert report.ok, report.problem
    # Gmail's first read goes newest first and reads the boundary second again; Graph carries
    # on from the next link it stored.
    expected = (4, 3, 1) if path == "gmail" else (3, 3, 0)
    assert (report.read, report.found, report.duplicates) == expected
    assert BounceEvent.objects.count() == 5


@pytest.mark.parametrize("path", ["gmail", "graph"])
def test_a_position_the_provider_forgot_reads_the_folder_again_counting_nothing_twice(
    acme: Tenant, rep_user: User, gmail_api: FakeGmail, graph: FakeGraph, path: str
) -> None:
    channel = _mailbox(acme, rep_user, path)
    first, second = (_sent(acme, rep_user, f"p{i}@prospect.test") for i in range(2))
    fake: FakeGmail | FakeGraph = gmail_api if path == "gmail" else graph
    fake.deliver(dsn_for(first, own_id="<b1@m>"))
    assert inbox.scan(channel.pk).found == 1
    if isinstance(fake, FakeGmail):
        fake.forget_history()  # history.list now answers 404
    else:
        fake.forget_states()  # the delta link now answers 410 SyncStateNotFound
    fake.deliver(dsn_for(second, own_id="<b2@m>"))
    report = inbox.scan(channel.pk)
    assert report.ok, report.problem
    assert (report.read, report.found, report.duplicates) == (2, 1, 1)
    assert BounceEvent.objects.count() == 2
    assert (404 if path == "gmail" else 410) in [status for status, _ in fake.statuses]


@pytest.mark.parametrize("path", ["gmail", "graph"])
def test_messages_over_the_cap_are_skipped_without_being_downloaded(
    acme: Tenant, rep_user: User, gmail_api: FakeGmail, graph: FakeGraph, settings, path: str
) -> None:
    settings.MSC_SCAN_MAX_BYTES = 20_000
    channel = _mailbox(acme, rep_user, path)
    message = _sent(acme, rep_user, "pat@prospect.test")
    huge = dsn_for(message, own_id="<huge@m>") + b"\n" + (b"y" * 76 + b"\n") * 2000
    fake: FakeGmail | FakeGraph = gmail_api if path == "gmail" else graph
    big = fake.deliver(huge)
    small = fake.deliver(ORDINARY)
    report = inbox.scan(channel.pk)
    assert (report.read, report.skipped, report.found) == (1, 1, 0)
    assert fake.fetched == [small] and big not in fake.fetched
    assert "1 over 19.5\xa0KB skipped" in report.summary
    assert inbox.scan(channel.pk).skipped == 0  # the cursor moved past it


def test_graph_without_mail_read_says_what_to_do_and_sending_carries_on(
    acme: Tenant, rep_user: User, graph: FakeGraph
) -> None:
    channel = _mailbox(acme, rep_user, "graph")
    graph.deny = True
    report = inbox.scan(channel.pk)
    assert not report.ok
    assert report.problem.startswith("Microsoft Graph did not allow reading this mailbox")
    assert "read it by IMAP instead" in report.problem
    cursors = InboxCursor.objects.filter(channel=channel)
    assert {c.folder for c in cursors} == {"inbox", "junkemail"}
    assert all(c.ok is False and "did not allow" in c.message for c in cursors)
    channel.refresh_from_db()
    assert channel.status == ChannelStatus.ACTIVE


def test_a_gmail_token_the_api_refuses_is_reported(
    acme: Tenant, rep_user: User, gmail_api: FakeGmail
) -> None:
    channel = _mailbox(acme, rep_user, "gmail")
    gmail_api.token = "another"
    report = inbox.scan(channel.pk)
    assert not report.ok
    assert report.problem.startswith("The Gmail API did not accept the access token")
    assert "reconnect the mailbox" in report.problem


@pytest.mark.django_db(transaction=True)  # request paths, in autocommit as Django serves them
def test_the_card_says_how_the_mailbox_is_read_and_the_admin_can_choose_imap(
    acme: Tenant,
    admin_user: User,
    rep_user: User,
    admin_client: Client,
    rep_client: Client,
    outsider_client: Client,
    gmail_api: FakeGmail,
) -> None:
    channel = _mailbox(acme, rep_user, "gmail")
    gmail_api.deliver(dsn_for(None, recipient="gone@far.test"), label="SPAM")
    inbox.scan(channel.pk)
    page = rep_client.get(reverse("channels:overview")).content.decode()
    assert "Read through the Gmail API: Inbox and Spam." in page
    assert "Inbox, last scanned" in page and "Spam, last scanned" in page
    assert "1 new message read, 1 bounce recorded." in page
    assert 'name="reading"' not in page  # a rep sees how, not the choice
    assert "MSC server" not in page

    url = reverse("bounces:reading", args=[channel.pk])
    assert rep_client.post(url, {"reading": "imap"}).status_code == 403
    assert outsider_client.post(url, {"reading": "imap"}).status_code == 404
    assert admin_client.get(url).status_code == 405
    channel.refresh_from_db()
    assert channel.oauth.reading == "api"

    answer = admin_client.post(url, {"reading": "nonsense"})
    assert answer.status_code == 302
    channel.refresh_from_db()
    assert channel.oauth.reading == "api"  # nothing changed on bad input

    answer = admin_client.post(url, {"reading": "imap"}, follow=True)
    assert "Read by IMAP: Inbox." in answer.content.decode()
    channel.refresh_from_db()
    assert channel.oauth.reading == "imap" and not inbox.through_api(channel)
    change = ChannelAuditEvent.objects.filter(channel=channel).latest("pk")
    assert change.changes == {"reading": {"from": "api", "to": "imap"}}
    page = rep_client.get(reverse("channels:overview")).content.decode()
    assert "Read by IMAP: Inbox." in page and "Your tenant admin chose to read this" in page


def test_a_reconnect_keeps_the_reading_path(acme: Tenant, rep_user: User) -> None:
    channel = _mailbox(acme, rep_user, "imap")
    channel_services.channel_connect_oauth(
        tenant=acme,
        owner=rep_user,
        kind=ChannelKind.GMAIL,
        provider="google",
        uid="g-1",
        email=rep_user.email,
        tokens={"access_token": "new", "refresh_token": "r2"},
        expires_at=None,
        scopes="https://mail.google.com/",
    )
    channel.refresh_from_db()
    assert channel.oauth.reading == "imap"


@pytest.mark.django_db(transaction=True)  # migrates back and forth
def test_a_cursor_stored_before_cursors_were_per_folder_is_kept(
    acme: Tenant, rep_user: User
) -> None:
    channel = gmail_channel(acme, rep_user)
    before = [("bounces", "0008_provider_spikes")]
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(before)
        old_apps = MigrationExecutor(connection).loader.project_state(before).apps
        old_apps.get_model("bounces", "InboxCursor").objects.create(
            tenant_id=acme.pk, channel_id=channel.pk, uidvalidity=7, last_uid=42, ok=True
        )
    finally:
        MigrationExecutor(connection).migrate(latest)
    cursor = InboxCursor.objects.get(channel=channel)
    assert (cursor.folder, cursor.uidvalidity, cursor.last_uid, cursor.token) == (
        "INBOX",
        7,
        42,
        "",
    )
    assert inbox.folder_cursors(channel) == [(inbox.IMAP_FOLDERS[0], cursor)]


def test_a_mailbox_connected_before_mail_read_was_asked_for_stays_on_imap_until_reconnected(
    acme: Tenant, rep_user: User
) -> None:
    """Existing Exchange Online mailboxes keep their bounce tracking when the default moves to
    Graph: without Mail.Read in their grant they are read by IMAP, as before."""
    older = _exchange(acme, rep_user, scopes="User.Read Mail.Send offline_access")
    assert not inbox.through_api(older)
    assert inbox.path_words(older) == "Read by IMAP: Inbox"
    other = MembershipFactory(tenant=acme, role=Role.REP, user__email="lee@acme.test").user
    newer = _exchange(acme, other)
    assert inbox.through_api(newer)
    assert inbox.path_words(newer) == "Read through Microsoft Graph: Inbox and Junk Email"
    Channel.objects.filter(pk=older.pk).update(config={**older.config, "reading": "api"})
    older.refresh_from_db()
    assert inbox.through_api(older)  # an admin's explicit choice stands (Graph says what's missing)

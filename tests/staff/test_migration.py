"""Moving a tenant off legacy ToutApp: nothing queued on MSC is lost, nothing goes through MSC
afterwards, users are told (feed and email), the admin sees who has not moved, and a user's
waiting mail goes out through the channel they connect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core import mail
from django.test import Client, TestCase
from django.urls import reverse

from accounts.models import Role, Tenant, User
from analytics.models import FeedKind, Notification
from channels import services as channel_services
from channels.kinds import ChannelKind
from channels.models import Channel, ChannelStatus, MscServer
from msc_admin.devtls import Certificates
from sending import pipeline
from sending.models import Hold, Message, MessageStatus
from staff.models import LegacyMigration, StaffAuditEvent
from tests.factories import MembershipFactory
from tests.mailservers import SmtpServer, smtp_server
from tests.sending.conftest import RELAY_PASSWORD, RELAY_USER, queue_message, relay_config

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool(certs: Certificates) -> Iterator[SmtpServer]:
    with smtp_server(mode="starttls", cert=certs.trusted, users={"pool": "pool-secret"}) as server:
        msc = MscServer.objects.create(
            name="msc-1", host="localhost", port=server.port, username="pool"
        )
        msc.set_password("pool-secret")
        msc.save()
        yield server


@pytest.fixture
def legacy(globex: Tenant, outsider_user: User, pool: SmtpServer) -> dict:
    """Globex: its admin and a rep on MSC servers, three queued messages, one already sent."""
    rep = MembershipFactory(tenant=globex, role=Role.REP, user__email="rep@globex.test").user
    queued = []
    for user in (outsider_user, rep):
        channel_services.channel_select_legacy(tenant=globex, actor=user, owner=user)
        identity = channel_services.identity_ensure_default(user=user, tenant=globex)
        first = queue_message(globex, user, identity, to=f"first-{user.pk}@prospect.test")
        assert pipeline.send_message(first.pk) == "sent"
        queued.append(queue_message(globex, user, identity, to=f"later-{user.pk}@prospect.test"))
    queued.append(queue_message(globex, rep, identity, to="third@prospect.test"))
    return {"rep": rep, "queued": queued}


def test_moving_off_legacy_loses_nothing_and_sends_nothing_through_msc(
    legacy: dict,
    globex: Tenant,
    staff_client: Client,
    staff_user: User,
    outsider_client: Client,
    pool: SmtpServer,
) -> None:
    page = staff_client.get(reverse("staff:tenant", args=[globex.pk])).content.decode()
    assert "2 MSC channels stop at once" in page
    assert "3 queued or scheduled messages on MSC wait" in page
    assert "2 people are told by email and in the live feed" in page
    sent_before = len(pool.received.messages)

    with TestCase.captureOnCommitCallbacks(execute=True):  # the task that tells the users
        response = staff_client.post(
            reverse("staff:tenant_legacy", args=[globex.pk]), {"legacy": "0"}, follow=True
        )
    assert "3 queued or scheduled messages wait for a new channel; 2 people are being told" in (
        response.content.decode()
    )
    globex.refresh_from_db()
    assert not globex.legacy_toutapp
    assert set(
        Channel.objects.filter(kind=ChannelKind.MSC_LEGACY).values_list("status", flat=True)
    ) == {ChannelStatus.DISABLED}

    # Nothing lost: every queued message is still queued, held for a channel.
    for message in legacy["queued"]:
        message.refresh_from_db()
        assert (message.status, message.hold) == (MessageStatus.QUEUED, Hold.CHANNEL)
    # Nothing through MSC: a worker handed one holds it; the periodic dispatcher leaves them.
    Message.objects.filter(pk=legacy["queued"][0].pk).update(next_attempt_at=None)
    assert pipeline.send_message(legacy["queued"][0].pk) == "skipped"
    pipeline.dispatch_due()
    assert len(pool.received.messages) == sent_before

    migration = LegacyMigration.objects.get()
    assert (migration.users, migration.told, migration.held) == (2, 2, 3)
    assert migration.finished_at is not None
    told = Notification.objects.filter(kind=FeedKind.CHANNEL).order_by("user__email")
    assert [n.user.email for n in told] == ["admin@globex.test", "rep@globex.test"]
    assert told[1].text == (
        "Your team no longer sends through the shared legacy servers. No channel yet: ask your "
        "admin for a team SMTP channel, or set up your own SMTP service under Delivery channels. "
        "2 of your messages wait for it."
    )
    assert sorted(m.to[0] for m in mail.outbox) == ["admin@globex.test", "rep@globex.test"]
    event = StaffAuditEvent.objects.get(action="moved off legacy ToutApp")
    assert (event.actor, event.tenant) == (staff_user, globex)
    assert event.details == {"msc_channels_disabled": 2, "users": 2, "messages_held": 3}

    # The tenant admin sees who has not moved yet.
    team = outsider_client.get(reverse("channels:team")).content.decode()
    assert "0 of 2 people who used them have a working channel now" in team
    assert "rep@globex.test: 2 messages waiting" in team
    # MSC servers are no longer offered, and choosing them is refused.
    assert outsider_client.post(reverse("channels:legacy_select")).status_code in (403, 404)
    # Moving it again is refused with a message.
    again = staff_client.post(
        reverse("staff:tenant_legacy", args=[globex.pk]), {"legacy": "0"}, follow=True
    )
    assert "is not a legacy ToutApp tenant" in again.content.decode()


def test_a_user_sends_the_waiting_mail_through_the_channel_they_connect(
    legacy: dict, globex: Tenant, staff_client: Client, certs: Certificates, pool: SmtpServer
) -> None:
    rep = legacy["rep"]
    staff_client.post(reverse("staff:tenant_legacy", args=[globex.pk]), {"legacy": "0"})
    client = Client()
    client.force_login(rep)
    outbox = client.get(reverse("sending:outbox")).content.decode()
    assert "2 messages wait for a channel" in outbox
    # Each waiting message says what to do, as things are on this server: no OAuth client
    # here, so no Gmail or Exchange advice, and no button that could not send it anywhere.
    row = outbox[outbox.index(f"later-{rep.pk}@prospect.test") :]
    assert (
        "Its channel is no longer available. No channel yet: ask your admin for a team SMTP "
        "channel, or set up your own SMTP service under Delivery channels."
    ) in row[: row.index("</tr>")]
    assert "mailbox" not in outbox and reverse("sending:reroute_held") not in outbox
    # Before connecting anything: what to do, and nothing moves.
    response = client.post(reverse("sending:reroute_held"), follow=True)
    page = response.content.decode()
    assert "Nothing could go out yet" not in page
    assert (
        "No channel yet: ask your admin for a team SMTP channel, or set up your own SMTP service "
        "under Delivery channels. Then send your waiting mail from here."
    ) in page.replace("&#x27;", "'")
    assert Message.objects.filter(sender=rep, hold=Hold.CHANNEL).count() == 2

    with smtp_server(
        mode="starttls", cert=certs.trusted, users={RELAY_USER: RELAY_PASSWORD}
    ) as own:
        channel_services.channel_save_smtp(
            tenant=globex,
            actor=rep,
            owner=rep,
            config=relay_config(own, domain="globex.test"),
            password=RELAY_PASSWORD,
            use_for_all_members=False,
        )
        sent_before = len(pool.received.messages)
        with TestCase.captureOnCommitCallbacks(execute=True):
            response = client.post(reverse("sending:reroute_held"), follow=True)
        assert "2 waiting messages will go out now." in response.content.decode()
        assert sorted(m["to"][0] for m in own.received.messages) == [
            f"later-{rep.pk}@prospect.test",
            "third@prospect.test",
        ]
    assert len(pool.received.messages) == sent_before  # none through MSC
    assert not Message.objects.filter(sender=rep, hold=Hold.CHANNEL).exists()
    assert "wait for a channel" not in client.get(reverse("sending:outbox")).content.decode()


def test_after_the_move_msc_is_offered_nowhere_and_cannot_be_chosen(
    legacy: dict, globex: Tenant, staff_client: Client
) -> None:
    from channels.models import Identity

    rep = legacy["rep"]
    msc = Channel.objects.get(owner=rep, kind=ChannelKind.MSC_LEGACY)
    staff_client.post(reverse("staff:tenant_legacy", args=[globex.pk]), {"legacy": "0"})
    client = Client()
    client.force_login(rep)
    page = client.get(reverse("channels:overview")).content.decode()
    assert "MSC" not in page and f'<option value="{msc.pk}"' not in page
    # Choosing the retired channel by hand is refused, and says why; nothing changes.
    identity = Identity.objects.get(user=rep)
    response = client.post(
        reverse("channels:identity_channel", args=[identity.pk]),
        {"channel": str(msc.pk)},
        follow=True,
    )
    assert "That channel cannot send for rep@globex.test" in response.content.decode()
    identity.refresh_from_db()
    assert identity.channel is None
    # An identity still set to it (from before this fix) does not route there.
    Identity.objects.filter(pk=identity.pk).update(channel=msc)
    compose = client.post(
        reverse("sending:compose"),
        {"to": "new@prospect.test", "identity": identity.pk, "subject": "Hi", "body": "Hello"},
    )
    assert compose.status_code == 400
    assert "No channel yet: ask your admin for a team SMTP channel" in compose.content.decode()
    assert not Message.objects.filter(to_email="new@prospect.test").exists()


def test_failed_msc_mail_retried_after_the_move_waits_for_a_channel_in_plain_words(
    legacy: dict, globex: Tenant, staff_client: Client
) -> None:
    from django.utils import timezone

    from sending.models import HELD_FOR_CHANNEL

    rep = legacy["rep"]
    failed = legacy["queued"][-1]
    Message.objects.filter(pk=failed.pk).update(
        status=MessageStatus.FAILED,
        failed_at=timezone.now(),
        status_detail="No MSC server is available right now.",
    )
    staff_client.post(reverse("staff:tenant_legacy", args=[globex.pk]), {"legacy": "0"})
    failed.refresh_from_db()
    assert failed.status_detail == "No shared legacy server is available right now."
    client = Client()
    client.force_login(rep)
    with TestCase.captureOnCommitCallbacks(execute=True):  # the send task, in-process
        client.post(reverse("sending:retry", args=[failed.pk]))
    failed.refresh_from_db()
    assert (failed.status, failed.hold, failed.status_detail) == (
        MessageStatus.QUEUED,
        Hold.CHANNEL,
        HELD_FOR_CHANNEL,
    )
    assert "MSC" not in client.get(reverse("sending:outbox")).content.decode()


def test_flagging_a_tenant_legacy_is_confirmed_and_audited(
    acme: Tenant, staff_client: Client, staff_user: User
) -> None:
    page = staff_client.get(reverse("staff:tenant", args=[acme.pk])).content.decode()
    assert "Flag as legacy ToutApp" in page and "not signed with DKIM" in page
    staff_client.post(reverse("staff:tenant_legacy", args=[acme.pk]), {"legacy": "1"})
    acme.refresh_from_db()
    assert acme.legacy_toutapp
    assert StaffAuditEvent.objects.get(action="flagged legacy ToutApp").tenant == acme


def test_progress_is_shown_while_users_are_told(
    legacy: dict, globex: Tenant, staff_client: Client
) -> None:
    staff_client.post(reverse("staff:tenant_legacy", args=[globex.pk]), {"legacy": "0"})
    # Without running the task (on_commit not executed here): 0 of 2 told, and the page polls.
    part = staff_client.get(reverse("staff:tenant_progress", args=[globex.pk])).content.decode()
    assert 'hx-trigger="every 2s"' in part and "0 of 2" in part


def test_telling_the_users_carries_on_after_a_crash(
    legacy: dict, globex: Tenant, staff_client: Client
) -> None:
    from staff import services

    staff_client.post(reverse("staff:tenant_legacy", args=[globex.pk]), {"legacy": "0"})
    migration = LegacyMigration.objects.get()
    # As if the worker died after telling the first person (their entry committed with it).
    LegacyMigration.objects.filter(pk=migration.pk).update(told=1)
    services.tell_migrated_users(migration.pk)
    told = Notification.objects.filter(kind=FeedKind.CHANNEL)
    assert [n.user.email for n in told] == ["rep@globex.test"]  # only the one not yet told
    migration.refresh_from_db()
    assert migration.told == 2 and migration.finished_at is not None


def test_staff_without_totp_set_it_up_before_the_console_or_the_django_admin(
    db: None, settings
) -> None:
    from tests.channels.conftest import reauthenticate
    from tests.factories import UserFactory

    settings.MSC_REQUIRE_MFA = True
    staff = UserFactory(email="new-staff@msc.test", is_staff=True)
    client = Client()
    client.force_login(staff)
    reauthenticate(client)
    for path in ("/staff/", "/django-admin/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"] == reverse("mfa_activate_totp")


@pytest.fixture
def globex_team_channel(globex: Tenant, outsider_user: User, certs: Certificates) -> Iterator:
    """Globex's admin has set up a team SMTP channel for every member (on a real relay)."""
    with smtp_server(
        mode="starttls", cert=certs.trusted, users={RELAY_USER: RELAY_PASSWORD}
    ) as relay:
        channel = channel_services.channel_save_smtp(
            tenant=globex,
            actor=outsider_user,
            owner=None,
            config=relay_config(relay, domain="globex.test"),
            password=RELAY_PASSWORD,
            use_for_all_members=True,
        )
        yield channel, relay


@pytest.mark.django_db(transaction=True)
def test_scheduled_mail_held_by_the_move_keeps_its_time_and_goes_through_the_named_channel(
    globex: Tenant, staff_client: Client, globex_team_channel: tuple
) -> None:
    """In autocommit, as served: a rep's mail scheduled for later, held by the move, keeps its
    time; the rep is told, and shown, the channel it will take; sent on, it is scheduled again
    for that time, not sent at once."""
    from datetime import timedelta

    from django.utils import timezone

    team, relay = globex_team_channel
    rep = MembershipFactory(tenant=globex, role=Role.REP, user__email="rep@globex.test").user
    channel_services.channel_select_legacy(tenant=globex, actor=rep, owner=rep)
    identity = channel_services.identity_ensure_default(user=rep, tenant=globex)
    client = Client()
    client.force_login(rep)
    later = (timezone.now() + timedelta(hours=2)).replace(second=0, microsecond=0)
    response = client.post(
        reverse("sending:compose"),
        {
            "identity": identity.pk,
            "to": "later@prospect.test",
            "subject": "In two hours",
            "body": "Hello",
            "send_at": later.strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert response.status_code == 302
    scheduled = Message.objects.get(to_email="later@prospect.test")
    assert (scheduled.status, scheduled.scheduled_at) == (MessageStatus.SCHEDULED, later)

    staff_client.post(reverse("staff:tenant_legacy", args=[globex.pk]), {"legacy": "0"})

    # Held, and its time kept.
    scheduled.refresh_from_db()
    assert (scheduled.status, scheduled.hold, scheduled.scheduled_at) == (
        MessageStatus.QUEUED,
        Hold.CHANNEL,
        later,
    )
    # The rep is told where their mail goes now (the team channel), not to connect anything.
    told = Notification.objects.get(user=rep, kind=FeedKind.CHANNEL).text
    assert told == (
        "Your team no longer sends through the shared legacy servers. Your mail now goes "
        "through Team channel: Custom SMTP. 1 message waited for the change: send it from "
        "your Outbox."
    )
    email = next(m for m in mail.outbox if m.to == ["rep@globex.test"])
    assert "Your mail now goes through Team channel: Custom SMTP." in email.body
    assert "Gmail" not in email.body and "Gmail" not in email.subject

    # The Outbox names the channel on its button, and the row points to it and says that it
    # keeps its time.
    outbox = client.get(reverse("sending:outbox")).content.decode()
    banner = outbox[outbox.index('id="held-for-channel"') :]
    banner = banner[: banner.index("</ul>")]
    assert "Send it through Team channel: Custom SMTP</button>" in banner
    assert "Connect" not in banner and "ask your admin" not in banner
    row = outbox[outbox.index(f'id="message-{scheduled.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "It goes through Team channel: Custom SMTP when you press" in row
    assert "Scheduled for" in row and "it keeps this time" in row
    assert "when the cause is fixed" not in row

    page = client.post(reverse("sending:reroute_held"), follow=True).content.decode()
    assert "1 scheduled message will go out at its scheduled time" in page
    assert "will go out now" not in page
    scheduled.refresh_from_db()
    assert (scheduled.status, scheduled.hold, scheduled.channel_id, scheduled.scheduled_at) == (
        MessageStatus.SCHEDULED,
        Hold.NONE,
        team.pk,
        later,
    )
    pipeline.dispatch_due()
    scheduled.refresh_from_db()
    assert scheduled.status == MessageStatus.SCHEDULED
    assert relay.received.messages == []


def test_the_advice_names_only_the_mailboxes_this_server_can_connect(
    legacy: dict, globex: Tenant, staff_client: Client, settings
) -> None:
    from channels.routing import ways_to_connect

    assert ways_to_connect(admin=False) == (
        "ask your admin for a team SMTP channel, or set up your own SMTP service under "
        "Delivery channels"
    )
    providers = {**settings.SOCIALACCOUNT_PROVIDERS}
    providers["google"] = {
        **providers["google"],
        "APPS": [{"client_id": "client.apps.googleusercontent.com", "secret": "s", "key": ""}],
    }
    settings.SOCIALACCOUNT_PROVIDERS = providers
    staff_client.post(reverse("staff:tenant_legacy", args=[globex.pk]), {"legacy": "0"})
    client = Client()
    client.force_login(legacy["rep"])
    banner = client.get(reverse("sending:outbox")).content.decode()
    assert (
        "No channel yet: connect your Gmail mailbox (or your own SMTP service) under Delivery "
        "channels, or ask your admin for a team SMTP channel."
    ) in banner
    assert "Exchange" not in banner
    assert ways_to_connect(admin=True).endswith("or set up a team SMTP channel under Team settings")


def test_counts_of_one_read_as_one(
    globex: Tenant, staff_client: Client, outsider_user: User, pool: SmtpServer
) -> None:
    """One person with one waiting message: no "1 queued messages wait", no "1 of your
    messages wait" (the staff console, the feed, the team settings)."""
    channel_services.channel_select_legacy(tenant=globex, actor=outsider_user, owner=outsider_user)
    identity = channel_services.identity_ensure_default(user=outsider_user, tenant=globex)
    queue_message(globex, outsider_user, identity, to="one@prospect.test")
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = staff_client.post(
            reverse("staff:tenant_legacy", args=[globex.pk]), {"legacy": "0"}, follow=True
        )
    assert (
        "1 queued or scheduled message waits for a new channel; 1 person is being told."
        in response.content.decode()
    )
    told = Notification.objects.get(kind=FeedKind.CHANNEL).text
    assert told.endswith(" 1 of your messages waits for it.")
    client = Client()
    client.force_login(outsider_user)
    team = client.get(reverse("channels:team")).content.decode()
    assert "0 of 1 person who used them have a working channel now" in team
    assert LegacyMigration.objects.get().held == 1


def test_each_retired_channel_is_in_the_tenants_channel_audit_log(
    legacy: dict, globex: Tenant, staff_client: Client, staff_user: User, outsider_client: Client
) -> None:
    from channels.models import ChannelAuditEvent

    staff_client.post(reverse("staff:tenant_legacy", args=[globex.pk]), {"legacy": "0"})
    retired = ChannelAuditEvent.objects.filter(tenant=globex, action="retired")
    assert sorted(retired.values_list("subject", flat=True)) == [
        "Shared legacy servers (retired) of admin@globex.test",
        "Shared legacy servers (retired) of rep@globex.test",
    ]
    assert {e.actor for e in retired} == {staff_user}
    page = outsider_client.get(reverse("channels:audit")).content.decode()
    assert "retired: Shared legacy servers (retired) of rep@globex.test" in page
    assert "Reason: Retired when your team moved off legacy ToutApp." in page
    assert "MSC" not in page

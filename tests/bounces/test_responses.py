"""Complaints, replies and auto-replies through the real ingestion: the inbox scan on a real
Dovecot, the SendGrid and SparkPost webhooks. Campaigns, suppressions, the feed and the roll-ups
agree, each report counts once, and a rebuild of the roll-ups gives what live counting gave."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from analytics.models import FeedKind, Notification, Rollup
from bounces import inbox, services
from bounces.models import Attribution, BounceEvent, ResponseEvent, ResponseKind
from channels.models import Channel, Identity
from sending import pipeline
from sending.models import (
    CAMPAIGN_ENDED_COMPLAINT,
    CAMPAIGN_ENDED_REPLY,
    Campaign,
    CampaignStep,
    Contact,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    Suppression,
    SuppressionReason,
    Template,
)
from sending.services import campaign_enroll, campaign_start
from tests.analytics.rollup_rows import rollup_rows
from tests.analytics.team import assert_team_rows_sum_the_senders
from tests.bounces.conftest import arf_for, reply_to
from tests.bounces.test_inbox import ORDINARY
from tests.bounces.test_webhooks import _issue, _post
from tests.mailservers import ImapServer
from tests.sending.conftest import gmail_channel

TOKEN = "imap-token-1"
MAILBOX = "rep@acme.test"
PEOPLE = ("pat", "lee", "kim", "sam")


def _campaign(acme: Tenant, rep_user: User, rep_identity: Identity) -> dict[str, Message]:
    """A two-step campaign to four people, its first step sent for real (through the loopback
    relay): {name: their first email}. Their second steps are scheduled three days on."""
    intro = Template.objects.create(
        tenant=acme, owner=rep_user, name="Intro", subject="Intro", body="Hi"
    )
    nudge = Template.objects.create(
        tenant=acme, owner=rep_user, name="Nudge", subject="Nudge", body="Hi again"
    )
    campaign = Campaign.objects.create(
        tenant=acme, owner=rep_user, name="Q4", identity=rep_identity
    )
    CampaignStep.objects.create(campaign=campaign, template=intro, position=1)
    CampaignStep.objects.create(campaign=campaign, template=nudge, position=2, delay_days=3)
    contacts = [
        Contact.objects.create(tenant=acme, owner=rep_user, email=f"{name}@prospect.test")
        for name in PEOPLE
    ]
    campaign_enroll(campaign=campaign, contacts=contacts)
    campaign_start(campaign=campaign)
    first: dict[str, Message] = {}
    for name in PEOPLE:
        message = Message.objects.get(to_email=f"{name}@prospect.test", campaign_step__position=1)
        if message.status != MessageStatus.SENT:  # in autocommit the eager task sent it already
            assert pipeline.send_message(message.pk) == "sent"
        message.refresh_from_db()
        assert message.status == MessageStatus.SENT
        first[name] = message
    assert Message.objects.filter(status=MessageStatus.SCHEDULED).count() == 4  # the nudges
    return first


def _enrollment(name: str) -> Enrollment:
    return Enrollment.objects.select_related("campaign").get(contact__email=f"{name}@prospect.test")


def _nudge(name: str) -> Message:
    return Message.objects.get(to_email=f"{name}@prospect.test", campaign_step__position=2)


def _snapshot(tenant: Tenant) -> dict[str, set[tuple]]:
    """Every roll-up table's rows (``rollups.ROLLUPS``), after checking that the team's rows
    sum the senders'."""
    assert_team_rows_sum_the_senders(tenant)
    return rollup_rows(tenant)


def _totals(tenant: Tenant) -> dict[str, int]:
    return Rollup.objects.filter(tenant=tenant).aggregate(
        sent=Sum("sent"),
        bounced=Sum("hard") + Sum("soft"),
        complained=Sum("complained"),
        replied=Sum("replied"),
    )


def _csv(client: Client, name: str) -> list[dict[str, str]]:
    answer = client.get(reverse(name))
    assert answer.status_code == 200
    text = b"".join(answer.streaming_content).decode()  # type: ignore[attr-defined]
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def scanned(acme: Tenant, rep_user: User, dovecot: ImapServer) -> Channel:
    """The rep's Gmail mailbox, read by the scanner (the campaign sends through the team's
    relay: the mailbox is where answers arrive)."""
    dovecot.add_user(MAILBOX, TOKEN)
    return gmail_channel(acme, rep_user, token=TOKEN)


@pytest.mark.django_db(transaction=True)
def test_an_inbox_scan_ends_campaigns_on_a_complaint_or_a_reply_and_not_on_an_out_of_office(
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    scanned: Channel,
    dovecot: ImapServer,
    admin_client: Client,
    rep_client: Client,
) -> None:
    first = _campaign(acme, rep_user, rep_identity)
    dovecot.deliver(
        MAILBOX,
        TOKEN,
        arf_for(first["pat"]),  # redacted: the recipient comes from our message
        reply_to(first["lee"], own_id="<r-lee@prospect.test>"),
        reply_to(first["kim"], own_id="<ooo-kim@prospect.test>", auto=True),
        ORDINARY,  # mail that names none of ours
    )
    report = inbox.scan(scanned.pk)
    assert report.ok, report.problem
    assert (report.read, report.found) == (4, 0)
    assert (report.complaints, report.replies, report.auto_replies) == (1, 1, 1)
    assert "1 complaint, 1 reply, 1 auto-reply" in report.summary

    events = {e.recipient: e for e in ResponseEvent.objects.all()}
    assert {r: (e.kind, e.message_id, e.attributed_by) for r, e in events.items()} == {
        "pat@prospect.test": (ResponseKind.COMPLAINT, first["pat"].pk, Attribution.MESSAGE_ID),
        "lee@prospect.test": (ResponseKind.REPLY, first["lee"].pk, Attribution.MESSAGE_ID),
        "kim@prospect.test": (ResponseKind.AUTO_REPLY, first["kim"].pk, Attribution.MESSAGE_ID),
    }
    assert not BounceEvent.objects.exists()  # a reply is never a bounce

    # The complaint ends Pat's campaign and suppresses the address, with the complaint as
    # evidence; Lee's reply ends Lee's; Kim's out-of-office and Sam's silence end nothing.
    assert _enrollment("pat").ended_reason == CAMPAIGN_ENDED_COMPLAINT
    assert _enrollment("pat").status_text == "Ended: they marked an email as spam"
    assert _enrollment("lee").ended_reason == CAMPAIGN_ENDED_REPLY
    assert _enrollment("lee").status_text == "Ended: they replied"
    assert _enrollment("kim").status == _enrollment("sam").status == EnrollmentStatus.ACTIVE
    assert _nudge("pat").status == _nudge("lee").status == MessageStatus.CANCELLED
    assert _nudge("kim").status == _nudge("sam").status == MessageStatus.SCHEDULED
    assert "replied to an earlier email" in _nudge("lee").detail_text
    (entry,) = Suppression.objects.filter(tenant=acme)
    assert (entry.address, entry.reason) == ("pat@prospect.test", SuppressionReason.COMPLAINT)
    assert (entry.complaint_event_id, entry.message_id) == (
        events["pat@prospect.test"].pk,
        first["pat"].pk,
    )
    assert entry.why.startswith("Marked as spam on ") and entry.why.endswith("“Intro”")
    for name in PEOPLE:
        first[name].refresh_from_db()
        assert first[name].status == MessageStatus.SENT
    assert first["pat"].complained_at and not first["pat"].replied_at
    assert first["lee"].replied_at and first["kim"].auto_replied_at
    assert not (first["kim"].replied_at or first["sam"].replied_at)

    # The sender's feed says each, once.
    feed = {n.kind: n.words for n in Notification.objects.filter(user=rep_user)}
    assert "pat@prospect.test marked your email as spam: Intro." in feed[FeedKind.COMPLAINED]
    assert feed[FeedKind.REPLIED] == "lee@prospect.test replied to Intro. Their campaign has ended."
    assert "auto-reply" in feed[FeedKind.AUTO_REPLIED] and "carries on" in feed["auto_replied"]

    # Roll-ups: one complaint and one reply of four sent; nothing bounced.
    counted = _totals(acme)
    assert counted == {"sent": 4, "bounced": 0, "complained": 1, "replied": 1}
    live = _snapshot(acme)

    # Read again from the start (the server renumbered the folder): nothing counts twice, and
    # the mailbox is as it was.
    dovecot.renumber(MAILBOX)
    again = inbox.scan(scanned.pk)
    assert again.ok and again.read == 4
    assert (again.complaints, again.replies, again.auto_replies) == (0, 0, 0)
    assert ResponseEvent.objects.count() == 3
    assert _snapshot(acme) == live
    assert Notification.objects.filter(user=rep_user).exclude(kind=FeedKind.SENT).count() == 3
    with dovecot.login(MAILBOX, TOKEN) as imap:
        imap.select("INBOX", readonly=True)
        _typ, data = imap.fetch("1:*", "(FLAGS)")
    flags = [line for line in data if isinstance(line, bytes)]
    assert len(flags) == 4 and not any(b"\\Seen" in line for line in flags)

    call_command("rebuild_rollups")
    assert _snapshot(acme) == live

    # Pages: the Outbox, the campaign's people, the analytics and their CSVs agree.
    outbox = rep_client.get(reverse("sending:outbox_folder", args=["sent"])).content.decode()
    assert "Complained: marked as spam" in outbox and ">Replied<" in outbox
    assert "Auto-reply (out of office)" in outbox and "their campaign carries on" in outbox
    campaign = Campaign.objects.get()
    people = rep_client.get(reverse("sending:campaign", args=[campaign.pk])).content.decode()
    assert "Ended: they marked an email as spam" in people and "Ended: they replied" in people
    (whole, step1, step2) = _csv(admin_client, "analytics:campaign_csv")
    assert (step1["complaints"], step1["replies"], step1["reply_rate_pct"]) == ("1", "1", "25.0")
    assert (step1["complaint_rate_pct"], step2["complaints"], step2["sent"]) == ("25.00", "0", "0")
    # The people columns are the campaign's: on its own row, not repeated on each step's.
    assert (whole["step"], whole["ended_by_complaint"], whole["ended_by_reply"]) == (
        "all",
        "1",
        "1",
    )
    assert (whole["sent"], whole["complaints"], whole["replies"]) == ("4", "1", "1")
    assert step1["ended_by_complaint"] == step1["enrolled"] == step2["ended_by_reply"] == ""
    # Nothing sent at step 2 yet: no rates, as the page's "—", rather than "0.0".
    assert step2["bounce_rate_pct"] == step2["reply_rate_pct"] == ""
    (intro,) = [row for row in _csv(admin_client, "analytics:template_csv") if row["sent"] != "0"]
    assert (intro["template"], intro["complaints"], intro["replies"]) == ("Intro", "1", "1")
    assert intro["bounced_hard"] == intro["bounced_soft"] == "0"
    (domain,) = _csv(admin_client, "analytics:domain_csv")
    assert (domain["recipient_domain"], domain["complaints"]) == ("prospect.test", "1")
    breakdown = admin_client.get(reverse("analytics:breakdown")).content.decode()
    assert "prospect.test" in breakdown and 'data-label="Complaints">1<' in breakdown
    page = admin_client.get(reverse("analytics:campaigns")).content.decode()
    assert "Ended by a complaint / a reply</dt><dd>1 / 1" in page


@pytest.mark.django_db(transaction=True)
def test_an_esp_spam_report_is_a_complaint_counted_once_with_its_effects(
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    team_channel: Channel,
    admin_client: Client,
) -> None:
    first = _campaign(acme, rep_user, rep_identity)
    path, auth = _issue(admin_client, team_channel, "sendgrid")
    report = {
        "email": "pat@prospect.test",
        "timestamp": 1795000000,
        "smtp-id": first["pat"].message_id,
        "event": "spamreport",
        "sg_event_id": "sg-spam-1",
    }
    assert _post(path, auth, [report]) == 200
    assert _post(path, auth, [report]) == 200  # SendGrid retries: counted once

    (event,) = ResponseEvent.objects.all()
    assert (event.kind, event.source, event.message_id, event.attributed_by) == (
        ResponseKind.COMPLAINT,
        "webhook",
        first["pat"].pk,
        Attribution.MESSAGE_ID,
    )
    assert event.detail_text == "spam report, reported by SendGrid"
    assert _enrollment("pat").ended_reason == CAMPAIGN_ENDED_COMPLAINT
    assert _nudge("pat").status == MessageStatus.CANCELLED
    entry = Suppression.objects.get(address="pat@prospect.test")
    assert (entry.reason, entry.complaint_event_id) == (SuppressionReason.COMPLAINT, event.pk)
    assert entry.why.startswith("Marked as spam, reported by SendGrid on ")
    feed = Notification.objects.filter(user=rep_user, kind=FeedKind.COMPLAINED)
    assert feed.count() == 1
    page = admin_client.get(reverse("sending:suppressions")).content.decode()
    assert "Marked as spam, reported by SendGrid on " in page
    assert f'data-complaint="{event.pk}">the email complained about</a>' in page
    assert _totals(acme)["complained"] == 1
    live = _snapshot(acme)

    # SparkPost's complaint about Lee, found by our token in its metadata.
    path, auth = _issue(admin_client, team_channel, "sparkpost")
    token = first["lee"].message_id.strip("<>").partition("@")[0].removeprefix("msc.")
    complaint = {
        "type": "spam_complaint",
        "event_id": "sp-spam-1",
        "raw_rcpt_to": "lee@prospect.test",
        "rcpt_meta": {"msc_message": token},
        "fbtype": "abuse",
        "timestamp": "1795000000",
    }
    assert _post(path, auth, [{"msys": {"message_event": complaint}}]) == 200
    lee = ResponseEvent.objects.get(recipient="lee@prospect.test")
    assert (lee.message_id, lee.kind) == (first["lee"].pk, ResponseKind.COMPLAINT)
    assert _enrollment("lee").ended_reason == CAMPAIGN_ENDED_COMPLAINT
    assert _totals(acme)["complained"] == 2
    assert _snapshot(acme) != live
    live = _snapshot(acme)
    call_command("rebuild_rollups")
    assert _snapshot(acme) == live
    assert not BounceEvent.objects.exists()


@pytest.mark.django_db
def test_an_arf_report_with_a_recipient_and_no_original_is_attributed_by_recipient(
    acme: Tenant, rep_user: User, rep_identity: Identity, team_channel: Channel
) -> None:
    first = _campaign(acme, rep_user, rep_identity)
    raw = arf_for(first["sam"], recipient="Sam@Prospect.test", message_id=False)
    (done,) = services.ingest_many(
        tenant=acme, items=[services.Incoming(raw)], channel=team_channel
    )
    (event,) = done.responses
    assert (event.recipient, event.message_id, event.attributed_by) == (
        "sam@prospect.test",
        first["sam"].pk,
        Attribution.RECIPIENT,
    )
    assert _enrollment("sam").ended_reason == CAMPAIGN_ENDED_COMPLAINT
    assert Suppression.objects.get(address="sam@prospect.test").complaint_event_id == event.pk

    # A complaint about mail we cannot find still suppresses its address (nothing else to end).
    stranger = arf_for(
        first["sam"], own_id="<arf-2@fbl>", recipient="who@else.test", message_id=False
    ).replace(b"Original-Rcpt-To", b"Removal-Recipient")
    (done,) = services.ingest_many(tenant=acme, items=[services.Incoming(stranger)])
    (unmatched,) = done.responses
    assert (unmatched.message_id, unmatched.recipient) == (None, "who@else.test")
    entry = Suppression.objects.get(address="who@else.test")
    assert (entry.reason, entry.complaint_event_id) == (SuppressionReason.COMPLAINT, unmatched.pk)
    assert _totals(acme)["complained"] == 1


@pytest.mark.django_db
def test_a_reply_is_found_by_our_token_quoted_back_and_foreign_or_own_mail_is_not_a_reply(
    acme: Tenant, rep_user: User, rep_identity: Identity, team_channel: Channel
) -> None:
    first = _campaign(acme, rep_user, rep_identity)
    quoted = reply_to(first["kim"], own_id="<q@prospect.test>", threaded=False, quoted_token=True)
    foreign = reply_to(first["lee"], own_id="<f@prospect.test>").replace(
        first["lee"].message_id.encode(), b"<not-ours@elsewhere.test>"
    )
    own_copy = reply_to(first["sam"], own_id="<msc.feedfeedfeedfeedfeedfeed@acme.test>")
    # A delivery notice the parser cannot read, quoting Sam's email back: not Sam's reply.
    notice = reply_to(first["sam"], own_id="<n@mx.test>", quoted_token=True).replace(
        b"From: Pat <sam@prospect.test>", b"From: Mail Delivery System <MAILER-DAEMON@mx.test>"
    )
    done = services.ingest_many(
        tenant=acme,
        items=[services.Incoming(raw) for raw in (quoted, foreign, own_copy, notice)],
        channel=team_channel,
    )
    assert [len(d.responses) for d in done] == [1, 0, 0, 0]
    (event,) = ResponseEvent.objects.all()
    assert (event.kind, event.message_id, event.attributed_by) == (
        ResponseKind.REPLY,
        first["kim"].pk,
        Attribution.HEADER,
    )
    assert _enrollment("kim").ended_reason == CAMPAIGN_ENDED_REPLY
    assert _enrollment("lee").status == _enrollment("sam").status == EnrollmentStatus.ACTIVE
    assert not Suppression.objects.exists()  # a reply suppresses nothing
    # A second reply from Kim is recorded but counts the message once.
    services.ingest(tenant=acme, raw=reply_to(first["kim"], own_id="<q2@prospect.test>"))
    assert ResponseEvent.objects.count() == 2
    assert _totals(acme)["replied"] == 1


@pytest.mark.django_db(transaction=True)
def test_an_inbox_scan_of_a_soft_bounce_retries_the_step_and_feed_roll_ups_and_campaign_agree(
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    scanned: Channel,
    dovecot: ImapServer,
) -> None:
    """The soft path through the real ingestion: a mailbox-full report read from the inbox on
    Dovecot. The person's campaign carries on (the step is tried again a day later, the next
    one waits), the address is not suppressed, the feed says soft, the roll-ups count one soft
    bounce, and a rebuild gives the same."""
    from datetime import timedelta

    from django.utils import timezone

    from tests.bounces.conftest import dsn_for

    first = _campaign(acme, rep_user, rep_identity)
    full = "452 4.2.2 <{rcpt}>: Mailbox full: quota exceeded"
    dovecot.deliver(MAILBOX, TOKEN, dsn_for(first["sam"], status="4.2.2", diagnostic=full))
    report = inbox.scan(scanned.pk)
    assert report.ok, report.problem
    assert report.found == 1

    (event,) = BounceEvent.objects.all()
    assert (event.message_id, event.hard, event.reason) == (first["sam"].pk, False, "mailboxfull")
    first["sam"].refresh_from_db()
    assert first["sam"].status == MessageStatus.BOUNCED and first["sam"].bounced_soft
    enrollment = _enrollment("sam")
    assert enrollment.status == EnrollmentStatus.ACTIVE  # a soft bounce ends nothing
    retry = Message.objects.get(
        enrollment=enrollment, campaign_step__position=1, status=MessageStatus.SCHEDULED
    )
    assert retry.scheduled_at - timezone.now() > timedelta(hours=23)
    assert "Retrying after a soft bounce" in retry.detail_text
    assert not Message.objects.filter(enrollment=enrollment, campaign_step__position=2).pending()
    assert not Suppression.objects.filter(tenant=acme).exists()

    (entry,) = Notification.objects.filter(user=rep_user, kind=FeedKind.BOUNCED)
    assert entry.words.startswith("sam@prospect.test bounced (Mailbox full, soft)")
    assert Rollup.objects.filter(tenant=acme).aggregate(soft=Sum("soft"), hard=Sum("hard")) == {
        "soft": 1,
        "hard": 0,
    }
    live = _snapshot(acme)
    assert inbox.scan(scanned.pk).found == 0  # read again: counted once
    call_command("rebuild_rollups")
    assert _snapshot(acme) == live

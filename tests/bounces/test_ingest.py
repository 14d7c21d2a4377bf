"""Attribution, counting once, "not a bounce", and the ledger pages, on PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.urls import reverse

import bounceparse
from accounts.models import Tenant, User
from bounces import services
from bounces.models import Attribution, BounceEvent
from channels.models import Channel, Identity, TeamSendingSettings
from sending.models import (
    CAMPAIGN_ENDED_BOUNCE,
    Campaign,
    CampaignStep,
    Contact,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    Template,
)
from tests.bounces.conftest import dsn_for, mark_sent
from tests.sending.conftest import queue_message


@pytest.fixture
def sent(acme: Tenant, rep_user: User, rep_identity: Identity) -> Message:
    return mark_sent(queue_message(acme, rep_user, rep_identity))


def test_matched_by_message_id_marks_the_message_bounced(acme: Tenant, sent: Message) -> None:
    outcome = services.ingest(tenant=acme, raw=dsn_for(sent, crlf=True))
    (event,) = outcome.created
    assert event.message == sent and event.attributed_by == Attribution.MESSAGE_ID
    assert (event.reason, event.hard, event.status, event.smtp_code) == (
        "userunknown",
        True,
        "5.1.1",
        "550",
    )
    sent.refresh_from_db()
    assert sent.status == MessageStatus.BOUNCED and sent.bounced_at is not None
    assert sent.detail_text.startswith("Hard bounce (Mailbox does not exist): 550 5.1.1")
    assert bytes(event.raw).startswith(b"Return-Path: <>")
    # What decided it, and which parser: the bounce's page says it in a sentence.
    assert event.evidence == {"source": "dsn", "rule": "status", "detail": "5.1.1", "format": ""}
    assert event.parser_version == bounceparse.PARSER_VERSION
    stored = BounceEvent.objects.get(pk=event.pk)
    assert stored.evidence == event.evidence and stored.parser_version == event.parser_version
    assert stored.explained == (
        'Hard: the status 5.1.1 means "mailbox does not exist" in the delivery report.'
    )


def test_matched_by_product_header_then_by_recipient_and_time(
    acme: Tenant, sent: Message, team_channel: Channel
) -> None:
    by_header = services.ingest(
        tenant=acme, raw=dsn_for(sent, message_id="<rewritten@relay.test>", own_id="<d1@x>")
    )
    assert by_header.created[0].attributed_by == Attribution.HEADER
    by_recipient = services.ingest(
        tenant=acme,
        channel=team_channel,
        raw=dsn_for(sent, message_id=None, product_header=False, own_id="<d2@x>"),
    )
    assert by_recipient.created[0].message == sent
    assert by_recipient.created[0].attributed_by == Attribution.RECIPIENT


def test_never_attributed_across_tenants(globex: Tenant, sent: Message) -> None:
    outcome = services.ingest(tenant=globex, raw=dsn_for(sent))
    (event,) = outcome.created
    assert event.message is None and event.tenant == globex  # kept, listed as not matched
    sent.refresh_from_db()
    assert sent.status == MessageStatus.SENT


def test_the_same_bounce_counts_once(acme: Tenant, sent: Message) -> None:
    raw = dsn_for(sent)
    assert len(services.ingest(tenant=acme, raw=raw).created) == 1
    again = services.ingest(tenant=acme, raw=raw.replace(b"\n", b"\r\n"))
    assert again.created == [] and again.duplicates == 1
    assert BounceEvent.objects.filter(message=sent).count() == 1


def test_not_a_bounce_is_not_recorded(acme: Tenant) -> None:
    raw = b"From: pat@prospect.test\nSubject: Out of office\nAuto-Submitted: auto-replied\n\nAway."
    outcome = services.ingest(tenant=acme, raw=raw)
    assert outcome.result.kind == "auto_reply" and outcome.created == []
    assert not BounceEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_scanners_at_once_count_it_once(acme: Tenant, sent: Message) -> None:
    raw = dsn_for(sent)
    barrier = threading.Barrier(2)
    results: list[int] = []

    def scan() -> None:
        try:
            barrier.wait()
            results.append(len(services.ingest(tenant=acme, raw=raw).created))
        finally:
            connection.close()

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1]
    assert BounceEvent.objects.filter(message=sent).count() == 1


def test_campaign_bounce_and_its_undo(
    acme: Tenant, rep_user: User, rep_identity: Identity, admin_user: User, admin_client
) -> None:
    template = Template.objects.create(tenant=acme, owner=rep_user, name="T", subject="s", body="b")
    campaign = Campaign.objects.create(tenant=acme, owner=rep_user, name="C", identity=rep_identity)
    step = CampaignStep.objects.create(campaign=campaign, template=template, position=1)
    enrollment = Enrollment.objects.create(
        tenant=acme,
        campaign=campaign,
        contact=Contact.objects.create(tenant=acme, owner=rep_user, email="pat@prospect.test"),
    )
    first = queue_message(acme, rep_user, rep_identity)
    following = queue_message(acme, rep_user, rep_identity)
    Message.objects.filter(pk__in=[first.pk, following.pk]).update(
        enrollment=enrollment, campaign_step=step
    )
    first = mark_sent(first)
    (event,) = services.ingest(tenant=acme, raw=dsn_for(first)).created
    enrollment.refresh_from_db()
    following.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.ENDED
    assert following.status == MessageStatus.CANCELLED
    assert following.status_detail == CAMPAIGN_ENDED_BOUNCE

    response = admin_client.post(reverse("bounces:undo", args=[event.pk]))
    assert response.status_code == 302
    event.refresh_from_db()
    first.refresh_from_db()
    enrollment.refresh_from_db()
    following.refresh_from_db()
    assert event.undone_at is not None and event.undone_by == admin_user
    assert first.status == MessageStatus.SENT and first.bounced_at is None
    assert enrollment.status == EnrollmentStatus.ACTIVE
    assert following.status in {MessageStatus.QUEUED, MessageStatus.SCHEDULED}


def test_ledger_pages_and_permissions(
    acme: Tenant, sent: Message, rep_client, admin_client, outsider_client
) -> None:
    (event,) = services.ingest(tenant=acme, raw=dsn_for(sent)).created
    services.ingest(tenant=acme, raw=dsn_for(None, own_id="<other@x>"))  # unmatched
    page = admin_client.get(reverse("bounces:list"))
    assert page.status_code == 200
    assert b"Not matched" in page.content and b"pat@prospect.test" in page.content
    unmatched = admin_client.get(reverse("bounces:list") + "?show=unmatched")
    assert b"nobody@prospect.test" in unmatched.content
    assert b"nobody@prospect.test" not in rep_client.get(reverse("bounces:list")).content
    detail = rep_client.get(reverse("bounces:detail", args=[event.pk]))
    assert detail.status_code == 200 and b"User unknown" in detail.content
    assert b"&lt;pat@prospect.test&gt;" in detail.content  # the raw bounce, escaped
    assert rep_client.post(reverse("bounces:undo", args=[event.pk])).status_code == 403
    assert outsider_client.get(reverse("bounces:detail", args=[event.pk])).status_code == 404
    assert outsider_client.post(reverse("bounces:undo", args=[event.pk])).status_code == 404
    event.refresh_from_db()
    assert event.undone_at is None


def test_a_batch_that_races_another_scanner_falls_back_and_counts_once(
    acme: Tenant, rep_user: User, rep_identity: Identity, monkeypatch
) -> None:
    sent = [
        mark_sent(queue_message(acme, rep_user, rep_identity, to=f"p{n}@prospect.test"))
        for n in range(3)
    ]
    raws = [dsn_for(m, own_id=f"<race{m.pk}@mx>") for m in sent]
    services.ingest(tenant=acme, raw=raws[1])  # the other scanner got there first…
    monkeypatch.setattr(services, "_known_keys", lambda tenant, keys: set())  # …after our look-up
    done = services.ingest_many(tenant=acme, items=[services.Incoming(raw) for raw in raws])
    assert [len(d.created) for d in done] == [1, 0, 1]
    assert [d.duplicates for d in done] == [0, 1, 0]
    assert BounceEvent.objects.count() == 3
    assert Message.objects.filter(status=MessageStatus.BOUNCED).count() == 3


def test_one_batch_matches_many_messages_in_a_few_queries(
    acme: Tenant, rep_user: User, rep_identity: Identity, django_assert_max_num_queries
) -> None:
    sent = [
        mark_sent(queue_message(acme, rep_user, rep_identity, to=f"p{n}@prospect.test"))
        for n in range(30)
    ]
    items = [services.Incoming(dsn_for(m, own_id=f"<q{m.pk}@mx>")) for m in sent]
    # Spike protection measures the channel (4 queries) but, at a 100 % limit, never pauses it;
    # by provider, one look-up of the domain cache finds none watched (nothing more is read).
    # The roll-ups are twelve upserts (``rollups.ROLLUPS``): totals, the team's by day and by
    # week; by domain, by domain and week, the team's by domain and by domain and week, the
    # team's by domain and template; by reason, the team's by reason by day and by week, the
    # team's by domain and reason.
    TeamSendingSettings.objects.update_or_create(tenant=acme, defaults={"spike_threshold_pct": 100})
    with django_assert_max_num_queries(24):
        done = services.ingest_many(tenant=acme, items=items)
    assert sum(len(d.created) for d in done) == 30
    assert all(d.created[0].message_id == m.pk for d, m in zip(done, sent, strict=True))


def test_a_recorded_bounce_reaches_the_senders_live_feed_and_nobody_elses(
    acme: Tenant, sent: Message, rep_client, admin_client, client
) -> None:
    from tests.factories import MembershipFactory

    (event,) = services.ingest(tenant=acme, raw=dsn_for(sent)).created
    services.ingest(tenant=acme, raw=dsn_for(sent))  # seen again: no second entry
    feed = rep_client.get(reverse("analytics:live_feed")).content.decode()
    assert feed.count("pat@prospect.test bounced (Mailbox does not exist, hard)") == 1
    assert f"/bounces/{event.pk}/" in feed
    assert (
        "pat@prospect.test bounced"
        in admin_client.get(reverse("analytics:live_feed")).content.decode()
    )
    other = MembershipFactory(tenant=acme, user__email="other@acme.test").user
    client.force_login(other)
    assert "pat@prospect.test" not in client.get(reverse("analytics:live_feed")).content.decode()


def test_both_ways_of_marking_messages_bounced_agree(
    acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    """PostgreSQL uses UPDATE … FROM unnest(…); other databases (the SQLite demo) a CASE."""
    from django.utils import timezone

    from sending.services import messages as sending_services

    made = [
        mark_sent(queue_message(acme, rep_user, rep_identity, to=f"p{n}@prospect.test"))
        for n in range(6)
    ]
    Message.objects.filter(pk=made[5].pk).update(status=MessageStatus.FAILED)
    now = timezone.now()
    soft = {made[0].pk, made[3].pk}
    fast = sending_services._bounce_rows_postgresql(
        {m.pk: f"why {m.pk}" for m in made[:3]}, soft, now
    )
    portable = sending_services._bounce_rows_portable(
        {m.pk: f"why {m.pk}" for m in made[3:]}, soft, now
    )
    assert sorted(row.pk for row in fast) == [m.pk for m in made[:3]]
    assert sorted(row.pk for row in portable) == [made[3].pk, made[4].pk]  # failed: untouched
    assert {row.to_email for row in fast + portable} == {m.to_email for m in made[:5]}
    for m in made[:5]:
        m.refresh_from_db()
        assert (m.status, m.status_detail, m.bounced_at, m.bounced_soft) == (
            MessageStatus.BOUNCED,
            f"why {m.pk}",
            now,
            m.pk in soft,
        )


def test_the_feed_hands_the_page_only_what_is_newer_and_only_what_it_may_see(
    acme: Tenant, sent: Message, rep_client, admin_client
) -> None:
    from analytics.models import Notification

    url = reverse("analytics:live_feed_newer")
    assert "feed-item" not in rep_client.get(url + "?after=0").content.decode()
    services.ingest(tenant=acme, raw=dsn_for(sent))
    newest = Notification.objects.get().pk
    fresh = rep_client.get(url + "?after=0").content.decode()
    assert "feed-item" in fresh and " new" in fresh and f"after={newest}" in fresh
    assert 'id="feed-empty" hidden hx-swap-oob="true"' in fresh
    assert "feed-item" not in rep_client.get(f"{url}?after={newest}").content.decode()
    assert rep_client.get(url + "?after=junk").status_code == 200
    assert "pat@prospect.test" in admin_client.get(url + "?after=0").content.decode()


@pytest.mark.django_db(transaction=True)  # as the scanner runs: autocommit, no outer transaction
def test_a_batch_returns_its_events_as_stored_and_stores_each_sentence_as_written_one_by_one(
    acme: Tenant, rep_user: User, rep_identity: Identity, django_assert_num_queries
) -> None:
    """A batch builds no model before it knows what was recorded, and stores its sentences
    without rendering them: the events it returns are the rows in the table (every column), and
    the message's status, the feed entry and the suppression say exactly what the sentences
    ``message_detail``, ``feed_text`` and the suppression's ``bounce_detail`` store."""
    from django.utils import translation

    from analytics.models import Notification
    from msc_admin.stored import stored
    from sending.models import Suppression
    from sending.services.suppressions import bounce_detail

    subjects = ["Intro “1”", "S" * 290, "Checking in"]  # the second's feed entry is shortened
    sent = [
        mark_sent(queue_message(acme, rep_user, rep_identity, to=f"p{n}@prospect.test", subject=s))
        for n, s in enumerate(subjects)
    ]
    long = "550 5.1.1 <{rcpt}>: " + "no such user here " * 40  # its status is shortened to fit
    raws = [
        dsn_for(sent[0], own_id="<w0@mx>"),
        dsn_for(sent[1], own_id="<w1@mx>", diagnostic=long),
        dsn_for(sent[2], own_id="<w2@mx>", status="4.2.2", diagnostic="452 4.2.2 Mailbox full"),
    ]
    with translation.override("pt-br"):  # whatever language the worker has active
        done = services.ingest_many(tenant=acme, items=[services.Incoming(r) for r in raws])
    events = [d.created[0] for d in done]
    with django_assert_num_queries(0):  # each event holds its message
        assert [event.message for event in events] == sent
    for event, message in zip(events, sent, strict=True):
        row = BounceEvent.objects.get(pk=event.pk)
        assert not event._state.adding
        for field in BounceEvent._meta.concrete_fields:
            mine, theirs = getattr(event, field.attname), getattr(row, field.attname)
            assert (bytes(mine) if field.name == "raw" else mine) == (
                bytes(theirs) if field.name == "raw" else theirs
            ), field.name
        message.refresh_from_db()
        assert message.status == MessageStatus.BOUNCED
        assert message.status_detail == stored(services.message_detail(row))
        feed = Notification.objects.get(tenant=acme, link=f"/bounces/{event.pk}/")
        assert feed.text == stored(services.feed_text(row, message), 300)
    assert len(sent[1].status_detail) <= 500 and "…" in sent[1].status_detail
    assert "…" in Notification.objects.get(link=f"/bounces/{events[1].pk}/").text
    kind = services.bounce_kind(events[0])
    entry = Suppression.objects.get(tenant=acme, address=sent[0].to_email)
    assert entry.detail == stored(
        bounce_detail(hard=True, code=kind.code, when=events[0].received_at, subject=subjects[0])
    )
    # The soft bounce suppresses nothing; the two hard ones do.
    assert Suppression.objects.filter(tenant=acme).count() == 2

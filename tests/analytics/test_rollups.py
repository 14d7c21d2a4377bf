"""Roll-ups move with each send, bounce and "not a bounce", and a rebuild gives the same rows."""

from __future__ import annotations

import random

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Q, Sum
from django.utils import timezone

from accounts.models import Tenant, User
from analytics import rollups
from analytics.models import (
    DomainReasonRollup,
    DomainRollup,
    DomainTemplateRollup,
    DomainWeekRollup,
    ReasonRollup,
    Rollup,
    TeamDomainRollup,
    TeamDomainWeekRollup,
    TeamRollup,
    TeamWeekRollup,
)
from bounces import services as bounces
from bounces.models import BounceEvent
from bounces.selectors import outcomes
from channels.models import Channel, Identity
from sending import pipeline
from sending.models import Message, MessageStatus, Template
from tests.analytics.rollup_rows import rollup_rows
from tests.analytics.team import assert_team_rows_sum_the_senders
from tests.bounces.conftest import arf_for, dsn_for, reply_to
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db

FIELDS = (
    "day",
    "sender_id",
    "template_key",
    "step_key",
    "channel_key",
    "sent",
    "hard",
    "soft",
    "complained",
    "replied",
)
REASON_FIELDS = ("day", "sender_id", "template_key", "reason", "hard", "count")


DOMAIN_FIELDS = (
    "day",
    "sender_id",
    "channel_key",
    "domain",
    "sent",
    "hard",
    "soft",
    "complained",
    "replied",
)


def snapshot(tenant: Tenant) -> tuple[set[tuple], set[tuple], set[tuple]]:
    totals = set(
        Rollup.objects.filter(tenant=tenant).exclude(sent=0, hard=0, soft=0).values_list(*FIELDS)
    )
    reasons = set(ReasonRollup.objects.filter(tenant=tenant).values_list(*REASON_FIELDS))
    domains = set(
        DomainRollup.objects.filter(tenant=tenant)
        .exclude(sent=0, hard=0, soft=0)
        .values_list(*DOMAIN_FIELDS)
    )
    return totals, reasons, domains


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_rollups_equal_a_rebuild_and_the_raw_tables(
    seed: int,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    team_channel: Channel,
) -> None:
    rng = random.Random(seed)
    templates = [
        Template.objects.create(tenant=acme, owner=rep_user, name=f"T{n}", subject="S", body="B")
        for n in range(3)
    ]
    sent: list[Message] = []
    for n in range(18):
        message = queue_message(
            acme, rep_user, rep_identity, to=f"p{n}@d{n % 4}.test", template=rng.choice(templates)
        )
        assert pipeline.send_message(message.pk) == "sent"
        message.refresh_from_db()
        sent.append(message)
    events: list[BounceEvent] = []
    for n, message in enumerate(rng.sample(sent, 9)):
        status = rng.choice(["5.1.1", "5.2.2", "4.2.2", "5.7.1"])
        for copy in range(rng.choice([1, 1, 2])):  # sometimes a second, different bounce
            raw = dsn_for(message, status=status, own_id=f"<b{n}-{copy}-{seed}@mx>")
            events += bounces.ingest(tenant=acme, raw=raw, channel=team_channel).created
        bounces.ingest(tenant=acme, raw=dsn_for(message, own_id=f"<b{n}-0-{seed}@mx>"))  # again
    for event in rng.sample(events, 4):
        bounces.undo(event=event, by=rep_user)
    # Complaints and replies (some reported twice, some about a bounced message) count too.
    for n, message in enumerate(rng.sample(sent, 7)):
        own_id = f"<c{n}-{seed}@fbl>"
        raw = arf_for(message, own_id=own_id) if n % 2 else reply_to(message, own_id=own_id)
        for copy in range(rng.choice([1, 2])):
            bounces.ingest(tenant=acme, raw=raw.replace(b"@fbl>", f"-{copy}@fbl>".encode()))

    incremental = snapshot(acme)
    assert_team_rows_sum_the_senders(acme)
    every = rollup_rows(acme)
    assert set(every) == {model.__name__ for model in rollups.ROLLUPS}
    assert all(every.values()), every  # each table has rows to compare
    call_command("rebuild_rollups")
    assert snapshot(acme) == incremental
    assert rollup_rows(acme) == every
    assert_team_rows_sum_the_senders(acme)

    # And both are what the raw tables say.
    raw = Message.objects.filter(tenant=acme, sent_at__isnull=False).aggregate(
        sent=Count("pk"), bounced=Count("pk", filter=Q(status=MessageStatus.BOUNCED))
    )
    rows = Rollup.objects.filter(tenant=acme)
    assert sum(r.sent for r in rows) == raw["sent"] == 18
    assert sum(r.hard + r.soft for r in rows) == raw["bounced"]
    assert sum(r.count for r in ReasonRollup.objects.filter(tenant=acme)) == raw["bounced"]
    responded = Message.objects.filter(tenant=acme).aggregate(
        complained=Count("pk", filter=Q(complained_at__isnull=False)),
        replied=Count("pk", filter=Q(replied_at__isnull=False)),
    )
    assert sum(r.complained for r in rows) == responded["complained"] > 0
    assert sum(r.replied for r in rows) == responded["replied"] > 0
    for template in templates:
        mine = Message.objects.filter(template=template)
        mine_rows = rows.filter(template_key=template.pk)
        assert sum(r.sent for r in mine_rows) == mine.count()
        bounced = mine.filter(status=MessageStatus.BOUNCED).count()
        assert sum(r.hard + r.soft for r in mine_rows) == bounced
    for domain in {m.to_domain for m in sent}:
        mine = Message.objects.filter(tenant=acme, to_domain=domain, sent_at__isnull=False)
        by_domain = DomainRollup.objects.filter(tenant=acme, domain=domain)
        assert sum(r.sent for r in by_domain) == mine.count() > 0
        bounced = mine.filter(status=MessageStatus.BOUNCED).count()
        assert sum(r.hard + r.soft for r in by_domain) == bounced
        # The team's rows by domain (the senders summed), by week, and by template.
        for model in (TeamDomainRollup, TeamDomainWeekRollup):
            team = model.objects.filter(tenant=acme, domain=domain)
            assert sum(r.sent for r in team) == mine.count()
            assert sum(r.hard + r.soft for r in team) == bounced
        for template in templates:
            to_template = mine.filter(template=template)
            rows = DomainTemplateRollup.objects.filter(
                tenant=acme, domain=domain, template_key=template.pk
            )
            assert sum(r.sent for r in rows) == to_template.count()
            assert (
                sum(r.hard + r.soft for r in rows)
                == to_template.filter(status=MessageStatus.BOUNCED).count()
            )
            assert (
                sum(r.complained for r in rows)
                == to_template.filter(complained_at__isnull=False).count()
            )
        reasons = DomainReasonRollup.objects.filter(tenant=acme, domain=domain)
        assert sum(r.count for r in reasons) == bounced


def test_the_rebuild_command_shows_progress(acme: Tenant, globex: Tenant, capsys) -> None:
    call_command("rebuild_rollups")
    out = capsys.readouterr().out
    assert "2/2 tenants" in out and "Rebuilt the roll-ups of 2 tenants." in out


def test_undoing_a_hard_bounce_that_a_soft_one_follows_moves_the_figures_to_soft(
    acme: Tenant, rep_user: User, rep_identity: Identity, team_channel: Channel
) -> None:
    """Both classes of one row move in one statement (hard -1, soft +1), as when a bounce is
    re-classified: PostgreSQL refuses an upsert that proposes the same row twice."""
    message = queue_message(acme, rep_user, rep_identity)
    assert pipeline.send_message(message.pk) == "sent"
    message.refresh_from_db()
    (hard,) = bounces.ingest(tenant=acme, raw=dsn_for(message, own_id="<h@mx>")).created
    bounces.ingest(tenant=acme, raw=dsn_for(message, status="5.2.2", own_id="<s@mx>"))
    bounces.undo(event=hard, by=rep_user)
    (row,) = Rollup.objects.filter(tenant=acme)
    assert (row.sent, row.hard, row.soft) == (1, 0, 1)
    assert_team_rows_sum_the_senders(acme)
    incremental = snapshot(acme)
    call_command("rebuild_rollups")
    assert snapshot(acme) == incremental


def test_a_rebuild_groups_in_the_database_whatever_the_number_of_rows(
    acme: Tenant, rep_user: User, team_channel: Channel, django_assert_num_queries
) -> None:
    """A rebuild is a fixed handful of statements (the database groups and inserts), not one
    trip per batch of rows: 4,500 domains' roll-ups and one template's."""
    now = timezone.now()
    Message.objects.bulk_create(
        Message(
            tenant=acme,
            sender=rep_user,
            channel=team_channel,
            to_email=f"p@d{n}.test",
            to_domain=f"d{n}.test",
            from_email=rep_user.email,
            subject="Hello",
            body="Hi",
            message_id=f"<rebuild{n}@acme.test>",
            status=MessageStatus.SENT,
            sent_at=now,
        )
        for n in range(4500)
    )
    # A savepoint, JIT off and a bigger sort area, twelve DELETEs (every roll-up table), five
    # INSERT … SELECTs from the messages (by template, by domain, by domain and template, by
    # reason, by domain and reason) and seven from the rows just written (the team's without the
    # sender, the weeks from the days), and the
    # savepoint's release.
    with django_assert_num_queries(28):
        rollups.rebuild([acme.pk], outcomes=outcomes)
    assert DomainRollup.objects.filter(tenant=acme).count() == 4500
    assert DomainWeekRollup.objects.filter(tenant=acme).count() == 4500
    assert DomainWeekRollup.objects.filter(tenant=acme).aggregate(n=Sum("sent"))["n"] == 4500
    assert DomainRollup.objects.filter(tenant=acme).aggregate(n=Sum("sent"))["n"] == 4500
    assert list(Rollup.objects.filter(tenant=acme).values_list("sent", "channel_key")) == [
        (4500, team_channel.pk)
    ]
    assert not ReasonRollup.objects.filter(tenant=acme).exists()
    assert list(TeamRollup.objects.filter(tenant=acme).values_list("sent", "channel_key")) == [
        (4500, team_channel.pk)
    ]
    assert TeamWeekRollup.objects.get(tenant=acme).sent == 4500
    assert TeamDomainWeekRollup.objects.filter(tenant=acme).count() == 4500
    assert DomainTemplateRollup.objects.filter(tenant=acme).aggregate(n=Sum("sent"))["n"] == 4500


def test_the_apps_database_sessions_do_not_jit_compile() -> None:
    """JIT compilation cost 100-500 ms on a big tenant's roll-up reads that run in 10-50 ms."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone() == ("off",)

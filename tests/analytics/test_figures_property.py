"""Property: whatever the mail, the figures the analytics pages export equal what the raw
messages and bounce events say, for any scope, date range, channel and recipient domain.

Each example writes random mail (senders, templates, campaign steps, channels, domains, days,
hard and soft bounces with reasons), keeps the roll-ups the way the product does (a bump per
send and per bounce), then reads the pages' CSV exports through the client and compares them
with figures computed here in Python from the same rows. A rebuild must then leave the roll-ups
as they were. Everything an example writes is rolled back before the next one.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import urlencode

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Role, Tenant, User
from analytics import rollups
from bounces.models import BounceEvent, BounceSource
from bounces.selectors import outcomes
from channels.models import Channel
from sending.models import Campaign, CampaignStatus, CampaignStep, Message, MessageStatus, Template
from tests.analytics.rollup_rows import rollup_rows
from tests.analytics.team import assert_team_rows_sum_the_senders
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

REASONS = [("userunknown", True), ("mailboxfull", False), ("blocked", True), ("expired", False)]
DOMAINS = ["alpha.test", "beta.test", "gamma.test"]


@dataclass(frozen=True)
class Mail:
    sender: int  # 0, 1: reps; 2: the admin
    template: int  # 0..2, or 3: none; 4, 5: campaign steps 1 and 2
    channel: int  # 0: team channel, 1: the first rep's own
    domain: int
    days_ago: int
    outcome: int  # 0..3 sent; 4..7 bounced with REASONS[outcome - 4]


mails = st.lists(
    st.builds(
        Mail,
        sender=st.integers(0, 2),
        template=st.integers(0, 5),
        channel=st.integers(0, 1),
        domain=st.integers(0, len(DOMAINS) - 1),
        days_ago=st.integers(0, 40),
        outcome=st.integers(0, 7),
    ),
    max_size=40,
)


@dataclass(frozen=True)
class Ask:
    viewer: int  # 0: first rep, 2: the admin
    team: bool
    range: str  # "7", "30", "90" or "custom"
    start_ago: int
    length: int
    channel: int | None
    domain: int | None


asks = st.builds(
    Ask,
    viewer=st.sampled_from([0, 2]),
    team=st.booleans(),
    range=st.sampled_from(["7", "30", "90", "custom"]),
    start_ago=st.integers(0, 45),
    length=st.integers(0, 20),
    channel=st.sampled_from([None, 0, 1]),
    domain=st.sampled_from([None, 0, 1, 2]),
)


@pytest.fixture
def world(acme: Tenant, admin_user: User, rep_user: User) -> dict:
    other = MembershipFactory(tenant=acme, user__email="other@acme.test", role=Role.REP).user
    users = [rep_user, other, admin_user]
    templates = [
        Template.objects.create(tenant=acme, owner=rep_user, name=f"T{n}", subject="S", body="B")
        for n in range(3)
    ]
    campaign = Campaign.objects.create(
        tenant=acme,
        owner=rep_user,
        name="Drip",
        status=CampaignStatus.ACTIVE,
        started_at=timezone.now() - timedelta(days=60),
    )
    steps = [
        CampaignStep.objects.create(campaign=campaign, position=n + 1, template=templates[n])
        for n in range(2)
    ]
    channels = [
        Channel.objects.create(tenant=acme, kind="custom_smtp"),
        Channel.objects.create(tenant=acme, owner=rep_user, kind="custom_smtp"),
    ]
    clients = {}
    for n in (0, 2):
        clients[n] = Client()
        clients[n].force_login(users[n])
    return {
        "tenant": acme,
        "users": users,
        "templates": templates,
        "steps": steps,
        "channels": channels,
        "clients": clients,
    }


def _write(world: dict, batch: list[Mail]) -> list[tuple[Mail, Message]]:
    """The mail as the product leaves it: messages, bounce events, roll-ups bumped per change."""
    tenant, now = world["tenant"], timezone.now()
    written = []
    for n, mail in enumerate(batch):
        step = world["steps"][mail.template - 4] if mail.template >= 4 else None
        template = (
            step.template
            if step
            else (world["templates"][mail.template] if mail.template < 3 else None)
        )
        bounced = mail.outcome >= 4
        sent_at = now - timedelta(days=mail.days_ago, minutes=n)
        message = Message.objects.create(
            tenant=tenant,
            sender=world["users"][mail.sender],
            channel=world["channels"][mail.channel],
            template=template,
            campaign_step=step,
            to_email=f"p{n}@{DOMAINS[mail.domain]}",
            to_domain=DOMAINS[mail.domain],
            from_email="rep@acme.test",
            subject="Hello",
            body="Hi",
            message_id=f"<prop{n}@acme.test>",
            status=MessageStatus.BOUNCED if bounced else MessageStatus.SENT,
            sent_at=sent_at,
        )
        rollups.count_sent(message, sent_at)
        if bounced:
            reason, hard = REASONS[mail.outcome - 4]
            BounceEvent.objects.create(
                tenant=tenant,
                message=message,
                channel=message.channel,
                source=BounceSource.INBOX,
                dedupe_key=f"prop-{n}",
                recipient=message.to_email,
                reason=reason,
                hard=hard,
                received_at=sent_at + timedelta(minutes=5),
            )
            rollups.count_bounces([(message, hard, reason, 1)])
        written.append((mail, message))
    return written


def _dates(ask: Ask) -> tuple[date, date]:
    today = timezone.localdate()
    if ask.range == "custom":
        start = today - timedelta(days=ask.start_ago)
        return start, min(start + timedelta(days=ask.length), today)
    return today - timedelta(days=int(ask.range) - 1), today


def _query(world: dict, ask: Ask) -> str:
    params = {"scope": "team" if ask.team else "me", "range": ask.range}
    if ask.range == "custom":
        start, _ = _dates(ask)
        params |= {
            "start": start.isoformat(),
            "end": (start + timedelta(days=ask.length)).isoformat(),
        }
    if ask.channel is not None:
        params["channel"] = str(world["channels"][ask.channel].pk)
    if ask.domain is not None:
        params["domain"] = DOMAINS[ask.domain]
    return "?" + urlencode(params)


def _in_scope(world: dict, ask: Ask, written: list[tuple[Mail, Message]]) -> list[Mail]:
    start, end = _dates(ask)
    team = ask.team and ask.viewer == 2
    chosen = []
    for mail, message in written:
        day = timezone.localdate(message.sent_at)
        if not (start <= day <= end):
            continue
        if not team and mail.sender != ask.viewer:
            continue
        if ask.channel is not None and mail.channel != ask.channel:
            continue
        if ask.domain is not None and mail.domain != ask.domain:
            continue
        chosen.append(mail)
    return chosen


def _csv(client: Client, name: str, query: str) -> list[list[str]]:
    response = client.get(reverse(name) + query)
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))[1:]


def _template_name(world: dict, mail: Mail) -> str:
    if mail.template >= 4:
        return world["templates"][mail.template - 4].name
    return world["templates"][mail.template].name if mail.template < 3 else "Without a template"


def _counts(mails: list[Mail]) -> tuple[int, int, int]:
    hard = sum(1 for m in mails if m.outcome >= 4 and REASONS[m.outcome - 4][1])
    soft = sum(1 for m in mails if m.outcome >= 4 and not REASONS[m.outcome - 4][1])
    return len(mails), hard, soft


def _check(world: dict, ask: Ask, written: list[tuple[Mail, Message]]) -> None:
    client, query = world["clients"][ask.viewer], _query(world, ask)
    chosen = _in_scope(world, ask, written)

    by_template: dict[str, list[Mail]] = defaultdict(list)
    for mail in chosen:
        by_template[_template_name(world, mail)].append(mail)
    got = {
        row[0]: tuple(map(int, row[1:4])) for row in _csv(client, "analytics:template_csv", query)
    }
    assert got == {name: _counts(group) for name, group in by_template.items()}

    by_domain: dict[str, list[Mail]] = defaultdict(list)
    for mail in chosen:
        by_domain[DOMAINS[mail.domain]].append(mail)
    got = {row[0]: tuple(map(int, row[1:4])) for row in _csv(client, "analytics:domain_csv", query)}
    assert got == {name: _counts(group) for name, group in by_domain.items()}

    # The page lists the domains with a bounce, with their sent mail.
    page = client.get(reverse("analytics:breakdown") + query).content.decode()
    shown = {
        m["domain"]: (int(m["sent"]), int(m["hard"]), int(m["soft"]))
        for m in re.finditer(
            r'data-label="Bounced">\d+</td>\s*<td data-label="Sent">(?P<sent>\d+)</td>.*?'
            r'>(?P<domain>[a-z.]+)</a></td>\s*<td data-label="Hard / soft">(?P<hard>\d+) / '
            r"(?P<soft>\d+)</td>",
            page,
            re.S,
        )
    }
    assert shown == {
        name: _counts(group)
        for name, group in by_domain.items()
        if any(m.outcome >= 4 for m in group)
    }

    reasons = Counter(REASONS[m.outcome - 4][0] for m in chosen if m.outcome >= 4)
    got_reasons = {row[0]: int(row[2]) for row in _csv(client, "analytics:reason_csv", query)}
    assert got_reasons == dict(reasons)

    by_step: dict[int, list[Mail]] = defaultdict(list)
    for mail in chosen:
        if mail.template >= 4:
            by_step[mail.template - 3].append(mail)
    steps = {
        int(row[1]): (int(row[5]), int(row[6]), int(row[7]))
        for row in _csv(client, "analytics:campaign_csv", query)
        if row[1] != "all"  # the campaign's own row, before its steps
    }
    if ask.viewer == 0 or ask.team:  # the campaign is the first rep's
        assert steps == {n: _counts(by_step.get(n, [])) for n in (1, 2)}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=mails, questions=st.lists(asks, min_size=1, max_size=4))
def test_page_figures_equal_the_raw_tables(
    world: dict, batch: list[Mail], questions: list[Ask]
) -> None:
    with transaction.atomic():
        written = _write(world, batch)
        for ask in questions:
            _check(world, ask, written)
        tenant = world["tenant"]

        def snapshot() -> dict[str, set[tuple]]:
            return rollup_rows(tenant)

        before = snapshot()
        assert_team_rows_sum_the_senders(tenant, some=False)
        rollups.rebuild([tenant.pk], outcomes=outcomes)
        assert snapshot() == before
        assert_team_rows_sum_the_senders(tenant, some=False)
        transaction.set_rollback(True)


def test_custom_dates_and_domain_are_checked(world: dict) -> None:
    client = world["clients"][2]
    url = reverse("analytics:overview")
    page = client.get(url + "?range=custom&start=2026-05-10&end=2026-05-01").content.decode()
    assert (
        "The range must start on or before its last day. Showing the last 30 days instead." in page
    )
    page = client.get(url + "?range=custom&start=2024-01-01&end=2026-01-01").content.decode()
    assert "Choose at most 366 days at a time." in page
    page = client.get(url + "?range=custom&start=yesterday").content.decode()
    assert "From: Enter a valid date." in page
    page = client.get(url + "?domain=not a domain!").content.decode()
    assert (
        "Recipient domain: Enter a domain such as example.com. Showing every domain instead."
        in page
    )
    # A good custom range is kept by the form.
    today = timezone.localdate()
    start = (today - timedelta(days=3)).isoformat()
    page = client.get(
        url + f"?range=custom&start={start}&end={today}&domain=@Alpha.TEST"
    ).content.decode()
    assert f'value="{start}"' in page and 'value="alpha.test"' in page
    assert '<option value="custom" selected>' in page
    assert "Showing" not in page

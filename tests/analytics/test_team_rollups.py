"""The team's pages read the team's roll-ups (no sender) a week at a time where they can
(``analytics.team``): template analytics, the reasons page and the home's top reasons give what
the raw messages say over ranges whose ends cut weeks, for mail of two senders and three
templates."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from analytics import rollups
from analytics.models import TeamRollup, TeamWeekRollup
from bounces import services as bounces
from bounces.selectors import outcomes
from channels.models import Channel, Identity, TeamSendingSettings
from channels.services import identity_ensure_default
from sending.models import Message, Template
from tests.accounts.test_home import number
from tests.analytics.team import assert_team_rows_sum_the_senders
from tests.bounces.conftest import dsn_for, mark_sent
from tests.factories import MembershipFactory
from tests.sending.conftest import queue_message

FULL = "552 5.2.2 <{rcpt}>: Mailbox full"


@pytest.fixture
def mail(
    acme: Tenant, rep_user: User, rep_identity: Identity, team_channel: Channel
) -> dict[str, object]:
    """Two reps' mail with three templates on days across two months, the weeks around a
    Tuesday two months back and last Saturday, hard and soft bounces; the roll-ups rebuilt."""
    TeamSendingSettings.objects.update_or_create(tenant=acme, defaults={"spike_protection": False})
    other = MembershipFactory(tenant=acme, user__email="other@acme.test").user
    senders = [(rep_user, rep_identity), (other, identity_ensure_default(user=other, tenant=acme))]
    templates = [
        Template.objects.create(tenant=acme, owner=rep_user, name=f"T{n}", subject="S", body="B")
        for n in range(3)
    ]
    today = timezone.localdate()
    start = rollups.week_of(today - timedelta(days=60)) + timedelta(days=1)  # a Tuesday
    saturday = rollups.week_of(today) - timedelta(days=2)
    days = {start - timedelta(days=1), start, start + timedelta(days=2), saturday}
    days |= {saturday + timedelta(days=1), today, today - timedelta(days=1)}
    days |= {start + timedelta(days=n) for n in range(0, (today - start).days, 4)}
    messages: list[Message] = []
    for n, day in enumerate(sorted(days)):
        ago = timezone.now() - timezone.make_aware(datetime.combine(day, time(12)))
        for k in range(1 + n % 3):
            user, identity = senders[(n + k) % 2]
            message = queue_message(
                acme, user, identity, to=f"p{n}-{k}@d{k}.test", template=templates[(n * k) % 3]
            )
            messages.append(mark_sent(message, ago=max(ago, timedelta(minutes=5))))
    for n, message in enumerate(messages[::2]):
        if n % 3 == 2:
            raw = dsn_for(message, status="5.2.2", diagnostic=FULL, own_id=f"<s{n}@mx>")
        else:
            raw = dsn_for(message, own_id=f"<h{n}@mx>")
        bounces.ingest(tenant=acme, raw=raw)
    rollups.rebuild([acme.pk], outcomes=outcomes)
    return {"start": start, "saturday": saturday, "templates": templates}


def _raw(tenant: Tenant, start: date, end: date) -> list:
    zone = timezone.get_current_timezone()
    return list(
        outcomes(tenant.pk).filter(
            sent_at__gte=datetime.combine(start, time.min, zone),
            sent_at__lt=datetime.combine(end + timedelta(days=1), time.min, zone),
        )
    )


def _csv(client: Client, name: str, query: str) -> list[list[str]]:
    response = client.get(reverse(name) + query)
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))[1:]


@pytest.mark.django_db(transaction=True)
def test_team_pages_over_ranges_cutting_weeks_equal_the_raw_messages(
    mail: dict, acme: Tenant, admin_client: Client
) -> None:
    today = timezone.localdate()
    start: date = mail["start"]
    names = {t.pk: t.name for t in mail["templates"]}
    # The weekly rows hold the mail of weeks the ranges cut at both ends.
    assert TeamWeekRollup.objects.filter(tenant=acme).count() >= 8
    assert TeamRollup.objects.filter(tenant=acme).count() > TeamWeekRollup.objects.count()
    assert_team_rows_sum_the_senders(acme)
    for first, last in ((start, today), (start + timedelta(days=1), mail["saturday"])):
        raw = _raw(acme, first, last)
        assert len({m.sender_id for m in raw}) == 2 and any(m.bounce_hard is False for m in raw)
        assert _raw(acme, first - timedelta(days=1), last) != raw
        query = "?" + urlencode({"scope": "team", "range": "custom", "start": first, "end": last})
        by_template: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        reasons: dict[str, Counter] = defaultdict(Counter)
        for m in raw:
            line = by_template[names[m.template_id]]
            line[0] += 1
            if m.bounce_hard is not None:
                line[1 if m.bounce_hard else 2] += 1
                reasons[names[m.template_id]][m.bounce_reason] += 1
        shown = {
            row[0]: (int(row[1]), int(row[2]), int(row[3]), row[9])
            for row in _csv(admin_client, "analytics:template_csv", query)
        }
        assert shown == {
            name: (
                *figures,
                "; ".join(
                    f"{reason} ({n})"
                    for reason, n in sorted(reasons[name].items(), key=lambda r: (-r[1], r[0]))[:3]
                ),
            )
            for name, figures in by_template.items()
        }
        everything = Counter(
            (m.bounce_reason or "unknown", "hard" if m.bounce_hard else "soft")
            for m in raw
            if m.bounce_hard is not None
        )
        shown_reasons = [
            (row[0], row[1], int(row[2]))
            for row in _csv(admin_client, "analytics:reason_csv", query)
        ]
        assert shown_reasons == sorted(
            ((*key, n) for key, n in everything.items()), key=lambda r: (-r[2], r[0])
        )
        assert len(everything) > 1
    # The home's top reasons over the last 30 days.
    month = Counter(
        m.bounce_reason
        for m in _raw(acme, today - timedelta(days=29), today)
        if m.bounce_hard is not None
    )
    assert month
    page = admin_client.get(reverse("home")).content.decode()
    for reason, n in month.most_common(3):
        assert number(page, f"reason-{reason}") == n

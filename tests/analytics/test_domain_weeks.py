"""The roll-ups by domain and week: kept equal to the sum of their days by every writer (sends,
bounces, re-classification, "not a bounce", complaints, replies) and by a rebuild, and the
pages that read them a week at a time give what the raw messages say, over ranges whose ends
cut weeks and months."""

from __future__ import annotations

import csv
import io
import random
import re
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

import pytest
from django.db.models import Q
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from accounts.models import Tenant, User
from analytics import rollups
from analytics.domains import DAILY, WEEKLY, pieces
from analytics.models import DomainRollup, DomainWeekRollup
from bounces import reclassify
from bounces import services as bounces
from bounces.models import BounceEvent
from bounces.selectors import outcomes
from channels.models import Channel, Identity, TeamSendingSettings
from sending import pipeline
from sending.models import Message, MessageStatus
from tests.accounts.test_home import number
from tests.analytics.team import assert_team_rows_sum_the_senders
from tests.bounces.conftest import arf_for, dsn_for, mark_sent, reply_to
from tests.sending.conftest import queue_message

FIGURES = ("sent", "hard", "soft", "complained", "replied")
KEY = ("day", "sender_id", "channel_key", "domain")
FULL = "552 5.2.2 <{rcpt}>: Mailbox full"


def test_the_pieces_of_any_range_sum_to_its_days_and_read_few_daily_rows() -> None:
    """Ranges of 1 to 90 days ending on any of the 20 days up to "today", today anywhere in
    80 days: the signed pieces add up to the range's days exactly (the week's rows being the
    sum of their days, future days empty); a range ending today reads at most three days of
    daily rows, whatever its length, in at most three branches."""
    rng = random.Random(5)
    first = date(2026, 1, 1)
    value = {first + timedelta(days=n): rng.randrange(1, 1000) for n in range(-140, 150)}
    for today in (first + timedelta(days=n) for n in range(40, 120, 3)):
        lived = {day: n if day <= today else 0 for day, n in value.items()}
        weeks: dict[date, int] = defaultdict(int)
        for day, n in lived.items():
            weeks[rollups.week_of(day)] += n
        for length in (1, 2, 6, 7, 8, 13, 30, 31, 45, 90):
            for end in (today - timedelta(days=k) for k in range(0, 20)):
                start = end - timedelta(days=length - 1)
                total = 0
                for piece in pieces(start, end, today):
                    if piece.table == WEEKLY:  # the rows of the Mondays in the range
                        mondays = (piece.last - piece.first).days // 7 + 1
                        total += piece.sign * sum(
                            weeks[piece.first + timedelta(days=7 * w)] for w in range(mondays)
                        )
                    else:
                        days = (piece.last - piece.first).days + 1
                        total += piece.sign * sum(
                            lived[piece.first + timedelta(days=d)] for d in range(days)
                        )
                expected = sum(lived[start + timedelta(days=d)] for d in range(length))
                assert total == expected, (start, end, today)
            ending_today = pieces(today - timedelta(days=length - 1), today, today)
            daily = [p for p in ending_today if p.table == DAILY]
            read = sum(max((min(p.last, today) - p.first).days + 1, 0) for p in daily)
            assert read <= 3, (length, today, daily)
            assert len(ending_today) <= 3, ending_today  # whole weeks in one branch


def _days_summed_by_week(tenant: Tenant) -> set[tuple]:
    weeks: dict[tuple, list[int]] = {}
    for row in DomainRollup.objects.filter(tenant=tenant).values_list(*KEY, *FIGURES):
        key = (rollups.week_of(row[0]), *row[1:4])
        found = weeks.setdefault(key, [0] * len(FIGURES))
        for n, figure in enumerate(row[4:]):
            found[n] += figure
    return {(*key, *figures) for key, figures in weeks.items()}


def _weeks(tenant: Tenant) -> set[tuple]:
    return set(DomainWeekRollup.objects.filter(tenant=tenant).values_list(*KEY, *FIGURES))


def _days(tenant: Tenant) -> set[tuple]:
    return set(DomainRollup.objects.filter(tenant=tenant).values_list(*KEY, *FIGURES))


@pytest.fixture
def spread(
    acme: Tenant, rep_user: User, rep_identity: Identity, team_channel: Channel
) -> dict[str, object]:
    """Mail to three domains on days across two month edges and the weeks around them, with
    hard and soft bounces, one of them stored as an earlier parser read it (hard, where the
    current one reads soft); the roll-ups rebuilt from it, as they stood before the changes the
    tests make."""
    TeamSendingSettings.objects.update_or_create(tenant=acme, defaults={"spike_protection": False})
    today = timezone.localdate()
    month = today.replace(day=1)
    two_back = (month - timedelta(days=1)).replace(day=1)
    two_back = (two_back - timedelta(days=1)).replace(day=1)
    # A Tuesday in the month before last: its week is read as the week's row less its Monday.
    start = rollups.week_of(two_back + timedelta(days=10)) + timedelta(days=1)
    # Last week's Saturday: its week is read as the week's row less its Sunday.
    saturday = rollups.week_of(today) - timedelta(days=2)
    edges = [month, month - timedelta(days=1), two_back + timedelta(days=31)]
    edges += [e - timedelta(days=1) for e in edges[2:]]
    days = {start, start + timedelta(days=1), start - timedelta(days=1), start - timedelta(days=6)}
    days |= {today, today - timedelta(days=1), today - timedelta(days=3), *edges}
    days |= {saturday, saturday + timedelta(days=1), saturday - timedelta(days=2)}
    days |= {start + timedelta(days=n) for n in range(0, (today - start).days, 5)}
    messages: list[Message] = []
    for n, day in enumerate(sorted(days)):
        ago = timezone.now() - timezone.make_aware(datetime.combine(day, time(12)))
        for k, domain in enumerate(("a.test", "b.test", "c.test")[: 1 + n % 3]):
            message = queue_message(acme, rep_user, rep_identity, to=f"p{n}-{k}@{domain}")
            messages.append(mark_sent(message, ago=max(ago, timedelta(minutes=5))))
    events = []
    for n, message in enumerate(messages[::2]):
        if n % 3 == 2:
            raw = dsn_for(message, status="5.2.2", diagnostic=FULL, own_id=f"<s{n}@mx>")
        else:
            raw = dsn_for(message, own_id=f"<h{n}@mx>")
        events += bounces.ingest(tenant=acme, raw=raw).created
    stale = [e for e in events if not e.hard][:2]
    BounceEvent.objects.filter(pk__in=[e.pk for e in stale]).update(
        reason="userunknown", hard=True, status="5.1.1", evidence={}, parser_version=""
    )
    rollups.rebuild([acme.pk], outcomes=outcomes)
    return {
        "start": start,
        "saturday": saturday,
        "messages": messages,
        "events": events,
        "stale": stale,
    }


@pytest.mark.django_db(transaction=True)
def test_weeks_stay_the_sum_of_their_days_through_every_writer(
    spread: dict, acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    messages: list[Message] = spread["messages"]
    before = _weeks(acme)
    assert before == _days_summed_by_week(acme) and len({r[0] for r in before}) >= 8
    # Re-classification moves the stale hard bounces (sent weeks ago) to soft.
    changes = reclassify.reclassify(event_ids=[e.pk for e in spread["stale"]], apply=True)
    assert len(changes) == 2
    # "Not a bounce" on some, new bounces on mail of other days and weeks.
    for event in spread["events"][:5:2]:
        bounces.undo(event=BounceEvent.objects.get(pk=event.pk), by=rep_user)
    for n, message in enumerate(messages[1::4]):
        bounces.ingest(tenant=acme, raw=dsn_for(message, own_id=f"<late{n}@mx>"))
    # Complaints and replies about mail sent on other days.
    for n, message in enumerate(messages[3::5]):
        raw = (
            arf_for(message, own_id=f"<c{n}@fbl>")
            if n % 2
            else reply_to(message, own_id=f"<r{n}@x>")
        )
        bounces.ingest(tenant=acme, raw=raw)
    # And today's sends.
    for n in range(3):
        message = queue_message(acme, rep_user, rep_identity, to=f"new{n}@b.test")
        pipeline.send_message(message.pk)  # sent already when queued, on commit (autocommit)
        message.refresh_from_db()
        assert message.status == MessageStatus.SENT

    weeks, days = _weeks(acme), _days(acme)
    assert weeks != before
    assert weeks == _days_summed_by_week(acme)
    assert sum(r[7] for r in weeks) > 0 and sum(r[8] for r in weeks) > 0  # complaints, replies
    assert_team_rows_sum_the_senders(acme)
    rollups.rebuild([acme.pk], outcomes=outcomes)
    assert (_weeks(acme), _days(acme)) == (weeks, days)
    assert_team_rows_sum_the_senders(acme)


def _raw(tenant: Tenant, start: date, end: date) -> dict[str, tuple[int, int, int]]:
    """Sent, hard and soft per domain, counted on the messages (and their first bounce)."""
    zone = timezone.get_current_timezone()
    found: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for message in outcomes(tenant.pk).filter(
        sent_at__gte=datetime.combine(start, time.min, zone),
        sent_at__lt=datetime.combine(end + timedelta(days=1), time.min, zone),
    ):
        row = found[message.to_domain]
        row[0] += 1
        if message.bounce_hard is not None:
            row[1 if message.bounce_hard else 2] += 1
    return {domain: (sent, hard, soft) for domain, (sent, hard, soft) in found.items()}


def _shown_domains(page: str) -> dict[str, tuple[int, int, int]]:
    return {
        m["domain"]: (int(m["sent"]), int(m["hard"]), int(m["soft"]))
        for m in re.finditer(
            r'data-label="Bounced">\d+</td>\s*<td data-label="Sent">(?P<sent>\d+)</td>.*?'
            r'>(?P<domain>[a-z.]+)</a></td>\s*<td data-label="Hard / soft">(?P<hard>\d+) / '
            r"(?P<soft>\d+)</td>",
            page,
            re.S,
        )
    }


@pytest.mark.django_db(transaction=True)
def test_the_breakdown_over_two_month_edges_equals_the_raw_messages(
    spread: dict, acme: Tenant, admin_client: Client, django_assert_num_queries
) -> None:
    today = timezone.localdate()
    start: date = spread["start"]
    saturday: date = spread["saturday"]
    # From a Tuesday two months back to today, and to last Saturday: each end cuts a week that
    # has mail on the day left out (the Monday before, the Sunday after).
    for first, last in ((start, today), (start, saturday)):
        raw = _raw(acme, first, last)
        assert len(raw) == 3 and sum(r[1] + r[2] for r in raw.values()) > 0
        assert _raw(acme, first - timedelta(days=1), last) != raw
        assert _raw(acme, first, last + timedelta(days=1)) != raw or last == today
        query = "?" + urlencode({"scope": "team", "range": "custom", "start": first, "end": last})
        with django_assert_num_queries(11):
            page = admin_client.get(reverse("analytics:breakdown") + query).content.decode()
        assert _shown_domains(page) == {d: r for d, r in raw.items() if r[1] or r[2]}
        response = admin_client.get(reverse("analytics:provider_csv") + query)
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert [tuple(map(int, row[2:5])) for row in rows[1:]] == [
            tuple(sum(r[n] for r in raw.values()) for n in range(3))
        ]
    # The home's most bounced domains over the last 30 days, with their sent mail.
    month = _raw(acme, today - timedelta(days=29), today)
    page = admin_client.get(reverse("home")).content.decode()
    top = sorted(
        ((hard + soft, domain) for domain, (_, hard, soft) in month.items() if hard + soft),
        key=lambda r: (-r[0], r[1]),
    )[:3]
    assert top
    for bounced, domain in top:
        assert number(page, f"domain-{domain}") == bounced
        assert number(page, f"domain-sent-{domain}") == month[domain][0]
    assert not Message.objects.filter(Q(to_domain="") | Q(sent_at__isnull=True)).exists()


@pytest.mark.django_db(transaction=True)
def test_templates_narrowed_to_a_domain_chart_its_days_as_the_raw_messages_say(
    spread: dict, acme: Tenant, admin_client: Client, django_assert_num_queries
) -> None:
    """The trend of template analytics narrowed to one domain (read from the roll-ups by
    domain) gives each day what that domain's messages say, over two month edges and weeks cut
    at both ends, while other domains' mail on the same days is left out."""
    today = timezone.localdate()
    start: date = spread["start"]
    zone = timezone.get_current_timezone()
    raw: dict[date, list[int]] = defaultdict(lambda: [0, 0])
    for message in outcomes(acme.pk).filter(
        to_domain="a.test", sent_at__gte=datetime.combine(start, time.min, zone)
    ):
        day = raw[timezone.localdate(message.sent_at)]
        day[0] += 1
        day[1] += message.bounce_hard is not None
    assert sum(d[1] for d in raw.values()) > 0 and len(raw) >= 10
    assert Message.objects.filter(to_domain="b.test", sent_at__date__in=list(raw)).exists()
    query = "?" + urlencode(
        {"scope": "team", "range": "custom", "start": start, "end": today, "domain": "a.test"}
    )
    with django_assert_num_queries(9) as captured:
        page = admin_client.get(reverse("analytics:overview") + query).content.decode()
    # The days from the roll-ups by domain, the figures by template and the reasons from the
    # team's roll-ups by domain and template: no message is read.
    read = [q["sql"] for q in captured.captured_queries]
    assert sum('FROM "analytics_domainrollup"' in sql for sql in read) == 1
    assert sum('FROM "analytics_domaintemplaterollup"' in sql for sql in read) == 1
    assert sum('FROM "analytics_domainreasonrollup"' in sql for sql in read) == 1
    assert sum('FROM "sending_message"' in sql for sql in read) == 0
    shown = {
        m["day"]: (int(m["sent"]), int(m["bounced"]))
        for m in re.finditer(
            r'<rect class="bar-sent"[^>]*><title>(?P<day>[A-Z][a-z]{2} \d+): (?P<sent>\d+) '
            r"sent, (?P<bounced>\d+) bounced</title>",
            page,
        )
    }
    assert len(shown) == (today - start).days + 1
    expected = {
        date_format(start + timedelta(days=n), "M j"): tuple(
            raw.get(start + timedelta(days=n), [0, 0])
        )
        for n in range((today - start).days + 1)
    }
    assert shown == expected

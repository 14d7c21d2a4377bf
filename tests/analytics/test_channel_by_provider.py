"""The breakdown's "by sending channel and receiving provider" table and its CSV, read from the
roll-ups by domain, with every figure checked against the messages themselves."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from bounces import services as bounces
from channels import providers
from channels import services as channel_services
from channels.models import Channel, Identity, ReceivingDomain
from sending import pipeline
from sending.models import Message, MessageStatus
from tests.bounces.conftest import dsn_for
from tests.mailservers import SmtpServer
from tests.sending.conftest import RELAY_PASSWORD, queue_message, relay_config

pytestmark = pytest.mark.django_db

# (channel: "team" or "own", recipient, bounces)
MAIL = [
    ("team", "a@gmail.com", True),
    ("team", "b@gmail.com", False),
    ("team", "c@googlemail.com", False),
    ("team", "d@gmail.com", False),
    ("team", "e@workspace.test", True),  # Google Workspace, by its MX
    ("team", "f@workspace.test", False),
    ("team", "g@contoso.test", False),  # Microsoft 365, by its MX
    ("team", "h@contoso.test", False),
    ("team", "i@contoso.test", False),
    ("team", "j@unclassified.test", False),
    ("team", "k@unclassified.test", False),
    ("own", "l@gmail.com", False),
    ("own", "m@gmail.com", False),
    ("own", "n@hotmail.com", True),
]


@pytest.fixture
def mail_sent(
    acme: Tenant, rep_user: User, rep_identity: Identity, team_channel: Channel, relay: SmtpServer
) -> dict[str, Channel]:
    now = timezone.now()
    ReceivingDomain.objects.create(domain="workspace.test", provider="google", checked_at=now)
    ReceivingDomain.objects.create(domain="contoso.test", provider="microsoft", checked_at=now)
    own = channel_services.channel_save_smtp(
        tenant=acme,
        actor=rep_user,
        owner=rep_user,
        config=relay_config(relay),
        password=RELAY_PASSWORD,
        use_for_all_members=False,
    )
    channels = {"team": team_channel, "own": own}
    for n, (through, to, bounced) in enumerate(MAIL):
        message = queue_message(acme, rep_user, rep_identity, to=to)
        Message.objects.filter(pk=message.pk).update(channel=channels[through])
        assert pipeline.send_message(message.pk) == "sent"
        if bounced:
            message.refresh_from_db()
            bounces.ingest(tenant=acme, raw=dsn_for(message, own_id=f"<b{n}@m>"))
    return channels


def _expected(acme: Tenant) -> dict[tuple[str, str], tuple[int, int]]:
    """(channel label, provider name) -> (sent, bounced), counted from the messages."""
    sent: Counter[tuple[str, str]] = Counter()
    bounced: Counter[tuple[str, str]] = Counter()
    rows = Message.objects.filter(tenant=acme, sent_at__isnull=False).select_related(
        "channel__owner"
    )
    for m in rows:
        key = (m.channel.label, providers.NAMES[providers.provider_of(m.to_domain)])
        sent[key] += 1
        bounced[key] += m.status == MessageStatus.BOUNCED
    return {key: (sent[key], bounced[key]) for key in sent}


def _cells(page: str) -> list[list[str]]:
    start = page.index('id="networks"')
    table = page[start : page.index("</table>", start)]
    body = table[table.index("<tbody>") :]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [
        [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in rows
    ]


def test_bounce_rate_by_sending_channel_and_receiving_provider(
    mail_sent: dict[str, Channel], acme: Tenant, admin_client: Client
) -> None:
    expected = _expected(acme)
    team, own = mail_sent["team"].label, mail_sent["own"].label
    assert expected == {
        (team, "Google"): (6, 2),
        (team, "Microsoft"): (3, 0),
        (team, "Not classified yet"): (2, 0),
        (own, "Google"): (2, 0),
        (own, "Microsoft"): (1, 1),
    }
    page = admin_client.get(reverse("analytics:breakdown") + "?scope=team").content.decode()
    shown = _cells(page)
    assert {(r[0], r[1]): (int(r[2]), int(r[3])) for r in shown} == expected
    assert [row[4] for row in shown if (row[0], row[1]) == (team, "Google")] == ["33.3 %"]
    # Names first, channels in order of their names, Google before Microsoft within each.
    order = sorted({team, own}, key=str.lower)
    assert [r[0] for r in shown] == sorted([r[0] for r in shown], key=order.index)
    # Each channel links to the breakdown narrowed to it; the sent figure to its templates.
    pk = mail_sent["own"].pk
    assert f'href="/analytics/breakdown/?range=30&amp;scope=team&amp;channel={pk}"' in page
    assert f'href="/analytics/?range=30&amp;scope=team&amp;channel={pk}"' in page
    assert 'class="num"' in page

    response = admin_client.get(reverse("analytics:provider_csv") + "?scope=team")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        "channel",
        "receiving_provider",
        "sent",
        "bounced_hard",
        "bounced_soft",
        "bounce_rate_pct",
    ]
    assert {(r[0], r[1]): (int(r[2]), int(r[3]) + int(r[4])) for r in rows[1:]} == expected
    assert [team, "Google", "6", "2", "0", "33.3"] in rows


def test_a_domain_classified_later_moves_to_its_provider(
    mail_sent: dict[str, Channel], acme: Tenant, rep_client: Client
) -> None:
    url = reverse("analytics:breakdown")
    before = {(r[0], r[1]) for r in _cells(rep_client.get(url).content.decode())}
    assert (mail_sent["team"].label, "Not classified yet") in before
    ReceivingDomain.objects.create(
        domain="unclassified.test", provider="other", checked_at=timezone.now()
    )
    after = {(r[0], r[1]): r[2] for r in _cells(rep_client.get(url).content.decode())}
    assert after[(mail_sent["team"].label, "Other providers")] == "2"
    assert (mail_sent["team"].label, "Not classified yet") not in after


def test_each_domain_is_classified_once_not_once_per_roll_up_row(
    mail_sent: dict[str, Channel], acme: Tenant, admin_client: Client
) -> None:
    """The table sums the roll-ups per channel and domain first: no statement looks up the
    receiving domains row by row of the roll-ups (52,000 look-ups for a big tenant's month)."""
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse("analytics:breakdown") + "?scope=team")
    assert response.status_code == 200
    reads = [q["sql"] for q in queries.captured_queries]
    assert any("receivingdomain" in sql for sql in reads)
    assert not any("receivingdomain" in sql and "domainrollup" in sql for sql in reads)

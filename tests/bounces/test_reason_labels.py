"""Every page that shows a bounce reason says it in words, with the code only in a tooltip; the
CSV exports keep the code and add the words."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant, User
from bounces import services
from bounces.models import BounceEvent, BounceSpike
from channels.models import Channel, Identity
from sending import pipeline
from sending.models import Message, Template
from tests.bounces.conftest import dsn_for
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db

# The reasons of the bounces below: none of them is an English word, so wherever one shows
# outside a tooltip, it is the bare code.
BOUNCES = {
    "gone@prospect.test": ("5.1.1", "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown"),
    "full@prospect.test": ("5.2.2", "552 5.2.2 <{rcpt}>: Mailbox full"),
    "spam@prospect.test": ("5.7.1", "550 5.7.1 Message rejected as spam by Content Filtering"),
}
CODES = re.compile(r"\b(userunknown|mailboxfull|spamdetected)\b")
WORDS = ("Mailbox does not exist", "Mailbox full", "Blocked as spam")


@pytest.fixture
def bounced(
    acme: Tenant, rep_user: User, rep_identity: Identity, team_channel: Channel
) -> tuple[Template, list[BounceEvent]]:
    template = Template.objects.create(
        tenant=acme, owner=rep_user, name="Intro", subject="Hi", body="Hello"
    )
    events = []
    for n, (to, (status, diagnostic)) in enumerate(BOUNCES.items()):
        message = queue_message(acme, rep_user, rep_identity, to=to, template=template)
        assert pipeline.send_message(message.pk) == "sent"
        message.refresh_from_db()
        raw = dsn_for(message, status=status, diagnostic=diagnostic, own_id=f"<l{n}@mx>")
        events += services.ingest(tenant=acme, raw=raw).created
    assert sorted(e.reason for e in events) == ["mailboxfull", "spamdetected", "userunknown"]
    now = timezone.now()
    BounceSpike.objects.create(
        tenant=acme,
        channel=team_channel,
        detected_at=now,
        window_start=now - timedelta(hours=1),
        sent=3,
        bounced=3,
        threshold_pct=10,
    )
    return template, events


def _text_outside_tooltips(page: str) -> str:
    """The page as read, with title attributes and the raw bounce message left out."""
    page = re.sub(r'<pre class="raw".*?</pre>', "", page, flags=re.S)
    return re.sub(r'\btitle="[^"]*"', "", page)


def test_no_page_shows_a_bare_reason_code(
    bounced: tuple[Template, list[BounceEvent]], admin_client: Client, rep_client: Client
) -> None:
    template, events = bounced
    spike = BounceSpike.objects.get()
    pages = {
        admin_client: [
            reverse("bounces:list"),
            *(reverse("bounces:detail", args=[e.pk]) for e in events),
            reverse("bounces:spike", args=[spike.pk]),
            reverse("analytics:overview"),
            reverse("analytics:template_bounces", args=[template.pk]),
            reverse("analytics:breakdown"),
            reverse("analytics:live_feed"),
        ],
        rep_client: [
            reverse("analytics:live_feed"),
            reverse("sending:outbox_folder", args=["bounced"]),
        ],
    }
    for client, urls in pages.items():
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, url
            page = response.content.decode()
            shown = _text_outside_tooltips(page)
            assert not CODES.search(shown), (url, CODES.findall(shown))
            assert any(words in shown for words in WORDS), url
            if "Reason code:" in page:  # and the tooltip holds the code
                assert re.search(
                    r'title="Reason code: (userunknown|mailboxfull|spamdetected)"', page
                )
    listed = admin_client.get(reverse("bounces:list")).content.decode()
    assert all(words in listed for words in WORDS)
    assert (
        '<span class="reason" title="Reason code: userunknown">Mailbox does not exist</span>'
        in (listed)
    )
    outbox = rep_client.get(reverse("sending:outbox_folder", args=["bounced"])).content.decode()
    assert "Hard bounce (Mailbox does not exist): 550 5.1.1" in outbox
    feed = rep_client.get(reverse("analytics:live_feed")).content.decode()
    assert "full@prospect.test bounced (Mailbox full, soft): " in feed
    message = Message.objects.get(to_email="spam@prospect.test")
    assert message.detail_text.startswith("Soft bounce (Blocked as spam): 550 5.7.1")


def _csv(client: Client, url: str) -> list[dict[str, str]]:
    response = client.get(url)
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_exports_keep_the_code_and_add_the_words(
    bounced: tuple[Template, list[BounceEvent]], admin_client: Client
) -> None:
    template, _ = bounced
    reasons = _csv(admin_client, reverse("analytics:reason_csv"))
    assert list(reasons[0]) == [
        "reason",
        "class",
        "bounces",
        "share_of_bounces_pct",
        "reason_label",
    ]
    assert {(r["reason"], r["class"], r["reason_label"]) for r in reasons} == {
        ("userunknown", "hard", "Mailbox does not exist"),
        ("mailboxfull", "soft", "Mailbox full"),
        ("spamdetected", "soft", "Blocked as spam"),
    }
    (line,) = _csv(admin_client, reverse("analytics:template_csv"))
    assert list(line)[-2:] == ["top_reasons", "top_reasons_label"]
    assert "userunknown (1)" in line["top_reasons"]
    assert "Mailbox does not exist (1)" in line["top_reasons_label"]
    rows = _csv(admin_client, reverse("analytics:template_bounces_csv", args=[template.pk]))
    assert list(rows[0])[-2:] == ["detail", "reason_label"]
    assert {(r["reason"], r["reason_label"]) for r in rows} == {
        ("userunknown", "Mailbox does not exist"),
        ("mailboxfull", "Mailbox full"),
        ("spamdetected", "Blocked as spam"),
    }

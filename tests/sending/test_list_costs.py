"""What the Sent folder and the Suppressions list cost per page, with pages full enough that
work done once per row would show (``bench.load``: under a crowd the server is CPU-bound, so a
page's p95 follows its CPU): a fixed number of queries, and words looked up in the catalogue
once per page, not once per row. And the rows still read as before, in the reader's language."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import trans_real

from accounts.models import Tenant, User
from channels.models import Channel, Identity
from sending.models import (
    Campaign,
    CampaignStep,
    Contact,
    Enrollment,
    Message,
    MessageStatus,
    Suppression,
    SuppressionReason,
    Template,
)
from tests.sending.conftest import gmail_channel

pytestmark = pytest.mark.django_db(transaction=True)

SENT = reverse("sending:outbox_folder", args=["sent"])
SUPPRESSIONS = reverse("sending:suppressions")
# Words a row may look up (about 5.5 now): its reply in words (twice) and as a tooltip, its
# month and "Sent …" line, its campaign line. Column names per row, its responses' words and
# Django's get_FOO_display for status and source (which looks up every choice) came to about 30.
PER_ROW = 7


@contextmanager
def catalogue_lookups() -> Iterator[list[str]]:
    """Every message looked up in a catalogue meanwhile: ``gettext``, ``pgettext``, lazy texts
    and the template tags all end in ``DjangoTranslation.gettext``."""
    seen: list[str] = []
    original = trans_real.DjangoTranslation.gettext

    def counting(self: trans_real.DjangoTranslation, message: str) -> str:
        seen.append(message)
        return original(self, message)

    with mock.patch.object(trans_real.DjangoTranslation, "gettext", counting):
        yield seen


def _sent(
    tenant: Tenant, user: User, identity: Identity, channels: list[Channel], first: int, n: int
) -> list[Message]:
    """``n`` sent messages, the newest last, alternating between ``channels``; every third one
    a campaign step's."""
    template = Template.objects.get_or_create(
        tenant=tenant, owner=user, name="Intro", defaults={"subject": "Hi", "body": "Hi"}
    )[0]
    campaign = Campaign.objects.get_or_create(tenant=tenant, owner=user, name="Q4 outreach")[0]
    step = CampaignStep.objects.get_or_create(
        campaign=campaign, position=2, defaults={"template": template}
    )[0]
    now = timezone.now()
    made = []
    for i in range(first, first + n):
        enrollment = None
        if i % 3 == 0:
            contact = Contact.objects.create(tenant=tenant, owner=user, email=f"p{i}@prospect.test")
            enrollment = Enrollment.objects.create(
                tenant=tenant, campaign=campaign, contact=contact
            )
        at = now - timedelta(hours=2) + timedelta(seconds=i)
        made.append(
            Message(
                tenant=tenant,
                sender=user,
                identity=identity,
                channel=channels[i % len(channels)],
                enrollment=enrollment,
                campaign_step=step if enrollment else None,
                to_email=f"p{i}@prospect.test",
                to_domain="prospect.test",
                from_email=user.email,
                subject=f"Hello {i}",
                body="Hi",
                message_id=f"<costs.{i}@acme.test>",
                status=MessageStatus.SENT,
                status_detail="250 2.0.0 Ok: queued as 4FxY",
                sent_at=at,
                handed_over_at=at,
            )
        )
    created = Message.objects.bulk_create(made)
    # The folder lists the newest first: give each its own moment, in sending order.
    for message in created:
        Message.objects.filter(pk=message.pk).update(created_at=message.sent_at)
    return created


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr id="message-\d+" data-status="sent">.*?</tr>', page, re.S)


def test_the_sent_folder_costs_the_same_queries_and_words_per_row_whatever_its_length(
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    team_channel: Channel,
    rep_client: Client,
    django_assert_max_num_queries,
) -> None:
    channels = [team_channel, gmail_channel(acme, rep_user)]
    _sent(acme, rep_user, rep_identity, channels, 0, 5)
    rep_client.get(SENT)  # templates compiled, catalogues loaded
    with catalogue_lookups() as few:
        assert len(_rows(rep_client.get(SENT).content.decode())) == 5
    _sent(acme, rep_user, rep_identity, channels, 5, 55)
    # Session, user, membership; the folder's count, its rows (with their channel, sender,
    # enrolment, campaign and step), the team's settings, the mail held for a channel, the
    # folders' counts; the usage tile: the user's channels, their counts, and for each of the
    # two its rolling windows (the Gmail mailbox also its 24-hour slots); the channel filter.
    with django_assert_max_num_queries(14), catalogue_lookups() as full:
        page = rep_client.get(SENT).content.decode()
    assert len(_rows(page)) == 50
    assert len(full) - len(few) <= 45 * PER_ROW, (Counter(full) - Counter(few)).most_common(9)


def test_the_sent_folder_reads_each_row_in_the_readers_language_and_pages_to_the_last(
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    team_channel: Channel,
    rep_client: Client,
) -> None:
    gmail = gmail_channel(acme, rep_user)
    made = _sent(acme, rep_user, rep_identity, [team_channel, gmail], 0, 60)
    with translation.override("pt-br"):
        labels = {team_channel.pk: team_channel.label, gmail.pk: gmail.label}
    assert labels[team_channel.pk].startswith("Canal da equipe")
    first = rep_client.get(SENT, headers={"Accept-Language": "pt-br"}).content.decode()
    rows = _rows(first)
    assert len(rows) == 50
    newest = list(reversed(made))
    for row, message in zip(rows, newest, strict=False):
        assert f'id="message-{message.pk}"' in row
        assert f">{labels[message.channel_id]}<" in row  # its own channel, not its neighbour's
        assert ">Enviado</span>" in row and ">Aplicativo web</span>" in row
        assert 'data-label="Para"' in row and "Enviado em " in row
        assert ("Campanha: Q4 outreach, etapa 2" in row) == (message.enrollment_id is not None)
    older = re.search(r'href="(\?page=2)"', first)
    assert older is not None
    second = rep_client.get(SENT + older.group(1)).content.decode()
    assert (
        [re.search(r"message-(\d+)", r).group(1) for r in _rows(second)]
        == [  # type: ignore[union-attr]
            str(m.pk) for m in newest[50:]
        ]
    )


@pytest.fixture
def sixty(acme: Tenant, admin_user: User) -> list[Suppression]:
    reasons = [SuppressionReason.HARD_BOUNCE, SuppressionReason.MANUAL]
    now = timezone.now()
    return Suppression.objects.bulk_create(
        Suppression(
            tenant=acme,
            address=f"{'gone' if i % 5 == 0 else 'left'}{i:02d}@prospect.test",
            reason=reasons[i % 2],
            created_by=admin_user if i % 2 else None,
            created_at=now - timedelta(minutes=i),
        )
        for i in range(60)
    )


def test_the_suppression_list_counts_once_and_looks_words_up_once_per_page(
    sixty: list[Suppression], admin_client: Client, django_assert_max_num_queries
) -> None:
    admin_client.get(SUPPRESSIONS)
    # Session, user, membership, the admin's second factor; the list's count (which the pager
    # reuses), its page.
    with django_assert_max_num_queries(6), catalogue_lookups() as words:
        page = admin_client.get(SUPPRESSIONS).content.decode()
    assert page.count('name="ids"') == 50
    assert "Page 1 of 2" in page and "60 addresses on the list." in page
    # The page's own words (about 70), and per row at most five: its checkbox's label, its month,
    # its reason, who added it, the "Why" column's name. Column names and reasons per row (and
    # Django's get_reason_display, which looks every reason up) came to about 16 a row.
    assert len(words) <= 100 + 50 * 5, Counter(words).most_common(8)
    second = admin_client.get(SUPPRESSIONS, {"page": 2}).content.decode()
    assert second.count('name="ids"') == 10 and "left59@prospect.test" in second


def test_a_filtered_suppression_list_pages_what_matches_in_the_readers_language(
    sixty: list[Suppression], admin_client: Client, django_assert_max_num_queries
) -> None:
    # Session, user, membership, the admin's second factor; the list's count, the matching count
    # (the pager's too), the page.
    with django_assert_max_num_queries(7):
        found = admin_client.get(
            SUPPRESSIONS, {"q": "gone"}, headers={"Accept-Language": "pt-br"}
        ).content.decode()
    assert found.count('name="ids"') == 12  # no pager: one page of the 12 that match
    assert 'class="pager"' not in found and "?page=2" not in found
    assert "12 de 60 endereços da lista correspondem." in found
    assert found.count(">Devolução permanente</span>") == 6
    assert found.count(">Adicionado por um administrador</span>") == 6


def test_the_sent_folder_lists_the_newest_first_not_the_last_changed(
    acme: Tenant, rep_user: User, rep_identity: Identity, team_channel: Channel, rep_client: Client
) -> None:
    """A row changed later (a late reply, a retry's bookkeeping) keeps its place: the folder is
    newest first by when the email was written, on the outbox index's order."""
    older, newer = _sent(acme, rep_user, rep_identity, [team_channel], 0, 2)
    Message.objects.filter(pk=older.pk).update(updated_at=timezone.now() + timedelta(hours=1))
    ids = [
        re.search(r"message-(\d+)", r).group(1)
        for r in _rows(rep_client.get(SENT).content.decode())
    ]  # type: ignore[union-attr]
    assert ids == [str(newer.pk), str(older.pk)]

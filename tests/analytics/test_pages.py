"""Template analytics from the roll-ups: figures equal the raw tables, scopes hold."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant, User
from bounces import services as bounces
from channels.models import Channel, Identity
from sending import pipeline
from sending.models import Template
from tests.bounces.conftest import dsn_for
from tests.factories import MembershipFactory
from tests.sending.conftest import queue_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(acme: Tenant, rep_user: User, rep_identity: Identity, team_channel: Channel) -> dict:
    intro = Template.objects.create(
        tenant=acme, owner=rep_user, name="Intro", subject="S", body="B"
    )
    other = MembershipFactory(tenant=acme, user__email="other@acme.test").user
    from channels import services as channel_services

    other_identity = channel_services.identity_ensure_default(user=other, tenant=acme)
    made = []
    for n in range(5):
        made.append(queue_message(acme, rep_user, rep_identity, to=f"p{n}@x.test", template=intro))
    for n in range(3):
        made.append(queue_message(acme, other, other_identity, to=f"o{n}@x.test", template=intro))
    for message in made:
        assert pipeline.send_message(message.pk) == "sent"
        message.refresh_from_db()
    bounces.ingest(tenant=acme, raw=dsn_for(made[0], own_id="<a@m>"))
    full = "552 5.2.2 <{rcpt}>: Mailbox full"
    bounces.ingest(
        tenant=acme, raw=dsn_for(made[1], status="5.2.2", diagnostic=full, own_id="<b@m>")
    )
    bounces.ingest(tenant=acme, raw=dsn_for(made[5], own_id="<c@m>"))
    return {"intro": intro, "made": made, "other": other}


def _row(page: str) -> str:
    start = page.index('id="template-analytics"')
    return page[start : page.index("</table>", start)]


def test_a_rep_sees_their_own_figures_and_an_admin_the_teams(
    history: dict, rep_client: Client, admin_client: Client, django_assert_max_num_queries
) -> None:
    url = reverse("analytics:overview")
    with django_assert_max_num_queries(12):
        mine = rep_client.get(url).content.decode()
    table = _row(mine)
    assert '<td data-label="Sent">5</td>' in table
    assert '<td data-label="Hard / soft">1 / 1</td>' in table
    assert (
        "userunknown (1), mailboxfull (1)" in table or "mailboxfull (1), userunknown (1)" in table
    )
    assert "5 sent and 2 bounced" in mine  # the chart's text alternative
    team = _row(admin_client.get(url + "?scope=team").content.decode())
    assert (
        '<td data-label="Sent">8</td>' in team and '<td data-label="Hard / soft">2 / 1</td>' in team
    )
    own = admin_client.get(url + "?scope=me").content.decode()
    assert "Nothing was sent in this range." in own  # the admin sent nothing themselves


def test_the_drill_down_lists_bounced_messages_and_links_the_raw_bounce(
    history: dict, rep_client: Client, admin_client: Client
) -> None:
    url = reverse("analytics:template_bounces", args=[history["intro"].pk])
    page = rep_client.get(url).content.decode()
    assert "p0@x.test" in page and "p1@x.test" in page
    assert "o0@x.test" not in page  # another rep's mail
    assert "/bounces/" in page
    assert "o0@x.test" in admin_client.get(url + "?scope=team").content.decode()
    assert rep_client.get(reverse("analytics:template_bounces", args=[999999])).status_code == 404

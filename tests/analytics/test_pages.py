"""Template analytics from the roll-ups: figures equal the raw tables, scopes hold."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

import bounceparse
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
def history(
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    team_channel: Channel,
    globex: Tenant,
    outsider_user: User,
) -> dict:
    outsider = outsider_user
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
    return {"intro": intro, "made": made, "other": other, "globex": globex, "outsider": outsider}


def _row(page: str) -> str:
    start = page.index('id="template-analytics"')
    return page[start : page.index("</table>", start)]


def _reason(code: str, n: int | None = None) -> str:
    """A reason as the pages show it: in words, the code in the tooltip."""
    shown = f'<span class="reason" title="Reason code: {code}">{bounceparse.label(code)}</span>'
    return shown if n is None else f"{shown} ({n})"


def test_a_rep_sees_their_own_figures_and_an_admin_the_teams(
    history: dict, rep_client: Client, admin_client: Client, django_assert_max_num_queries
) -> None:
    url = reverse("analytics:overview")
    with django_assert_max_num_queries(12):
        mine = rep_client.get(url).content.decode()
    table = _row(mine)
    assert '<td data-label="Sent">5</td>' in table
    assert '<td data-label="Hard / soft">1 / 1</td>' in table
    mailbox, full = _reason("userunknown", 1), _reason("mailboxfull", 1)
    assert f"{mailbox}, {full}" in table or f"{full}, {mailbox}" in table
    assert "5 sent and 2 bounced" in mine  # the chart's text alternative
    # The name comes first, and replies have their rate beside them as complaints do.
    first = table[table.index("<th") : table.index("</th>")]
    assert ">Template</a>" in first
    assert table.index('data-label="Template"') < table.index('data-label="Sent"')
    assert '<td data-label="Reply rate">0.0 %</td>' in table
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


def test_campaign_analytics_per_step_with_people_ended_by_a_bounce(
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    team_channel: Channel,
    rep_client: Client,
    admin_client: Client,
    django_assert_max_num_queries,
) -> None:
    from sending import services as sending
    from sending.models import Campaign, CampaignStep, Contact, Message

    first = Template.objects.create(
        tenant=acme, owner=rep_user, name="Opener", subject="S", body="B"
    )
    second = Template.objects.create(
        tenant=acme, owner=rep_user, name="Nudge", subject="S", body="B"
    )
    campaign = Campaign.objects.create(
        tenant=acme, owner=rep_user, identity=rep_identity, name="Q4"
    )
    CampaignStep.objects.create(campaign=campaign, position=1, template=first)
    CampaignStep.objects.create(campaign=campaign, position=2, template=second, delay_days=3)
    people = [
        Contact.objects.create(tenant=acme, owner=rep_user, email=f"c{n}@prospect.test")
        for n in range(4)
    ]
    sending.campaign_enroll(campaign=campaign, contacts=people)
    sending.campaign_start(campaign=campaign)
    for message in Message.objects.filter(campaign_step__position=1):
        assert pipeline.send_message(message.pk) == "sent"
    bounced = Message.objects.get(to_email="c0@prospect.test", campaign_step__position=1)
    bounces.ingest(tenant=acme, raw=dsn_for(bounced, own_id="<q4@m>"))

    url = reverse("analytics:campaigns")
    with django_assert_max_num_queries(12):
        page = rep_client.get(url).content.decode()
    section = page[page.index('id="campaign-') :]
    assert "<dt>Enrolled</dt><dd>4</dd>" in section
    assert "<dt>Sent</dt><dd>4</dd>" in section
    assert "<dt>Bounced (hard / soft)</dt><dd>1 / 0</dd>" in section
    assert "<dt>Ended by a bounce</dt><dd>1</dd>" in section
    # The step chart: each bar with its name and figures as text, on an axis from 0 to 5.
    bars = re.findall(
        r'<li class="step-bar" title="([^"]*)">.*?<span class="step-name">(.*?)</span>\s*<svg.*?'
        r'<span class="step-values">(.*?)</span>',
        section,
        re.S,
    )
    assert [
        (title, re.sub(r"<[^>]+>|\s+", " ", name).split(), values) for title, name, values in bars
    ] == [
        ("Step 1 (Opener): 4 sent, 1 bounced", ["Step", "1", "Opener"], "4 sent · 1 bounced"),
        ("Step 2 (Nudge): 0 sent, 0 bounced", ["Step", "2", "Nudge"], "0 sent · 0 bounced"),
    ]
    assert '<span class="ticks"><span>0</span><span>5</span></span>' in section
    other = Client()
    stranger = MembershipFactory(tenant=acme, user__email="x@acme.test").user
    other.force_login(stranger)
    assert "Q4" not in other.get(url).content.decode()  # another rep's campaign
    assert "Q4" in admin_client.get(url).content.decode()


def test_tables_export_as_streamed_csv_with_formulas_defused(
    history: dict, rep_client: Client, acme: Tenant, rep_user: User
) -> None:
    import csv
    import io

    Template.objects.filter(pk=history["intro"].pk).update(name="=HYPERLINK(1)")
    response = rep_client.get(reverse("analytics:template_csv") + "?range=7")
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][:4] == ["template", "sent", "bounced_hard", "bounced_soft"]
    assert rows[1][:4] == ["'=HYPERLINK(1)", "5", "1", "1"]
    campaigns = rep_client.get(reverse("analytics:campaign_csv"))
    assert b"".join(campaigns.streaming_content).decode().startswith("campaign,step,template")


def test_the_channel_filter_narrows_every_figure_and_offers_only_visible_channels(
    history: dict, acme: Tenant, rep_user: User, rep_client: Client, admin_client: Client
) -> None:
    from channels.models import Channel
    from tests.sending.conftest import gmail_channel

    team = Channel.objects.get(tenant=acme, owner__isnull=True)
    gmail = gmail_channel(acme, rep_user)  # no mail went through it
    other_gmail = gmail_channel(acme, history["other"])
    url = reverse("analytics:overview")

    def offered(client: Client) -> str:
        page = client.get(url).content.decode()
        start = page.index('<select id="channel"')
        return page[start : page.index("</select>", start)]

    mine = offered(rep_client)
    assert f'<option value="{gmail.pk}"' in mine and f'<option value="{team.pk}"' in mine
    assert f'<option value="{other_gmail.pk}"' not in mine  # another rep's mailbox
    through_team = _row(rep_client.get(f"{url}?channel={team.pk}").content.decode())
    assert '<td data-label="Sent">5</td>' in through_team
    assert _reason("userunknown", 1) in through_team
    assert "Nothing was sent" in rep_client.get(f"{url}?channel={gmail.pk}").content.decode()
    # An unknown or foreign channel id is ignored, not an error.
    assert rep_client.get(f"{url}?channel={other_gmail.pk}").status_code == 200
    assert f'<option value="{other_gmail.pk}"' in offered(admin_client)


def test_sort_export_and_page_links_keep_the_filters(history: dict, admin_client: Client) -> None:
    page = admin_client.get(reverse("analytics:overview") + "?scope=team&range=7").content.decode()
    assert "??" not in page
    assert 'href="?scope=team&amp;range=7&amp;sort=name"' in page
    assert 'href="/analytics/templates.csv?scope=team&amp;range=7"' in page


def test_breakdown_by_reason_and_recipient_domain(
    history: dict,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    rep_client: Client,
    admin_client: Client,
    django_assert_max_num_queries,
) -> None:
    extra = queue_message(acme, rep_user, rep_identity, to="ceo@bigcorp.test")
    assert pipeline.send_message(extra.pk) == "sent"
    extra.refresh_from_db()
    bounces.ingest(tenant=acme, raw=dsn_for(extra, own_id="<d@m>"))
    url = reverse("analytics:breakdown")
    with django_assert_max_num_queries(12):
        page = rep_client.get(url).content.decode()
    reasons = page[page.index('id="reasons"') : page.index("</table>", page.index('id="reasons"'))]
    assert f'<td data-label="Reason">{_reason("userunknown")}</td>' in reasons
    assert '<td data-label="Bounces">2</td>' in reasons and "66.7 %" in reasons
    domains = page[page.index('id="domains"') : page.index("</table>", page.index('id="domains"'))]
    # Sorted by bounced: x.test (2 of 5) before bigcorp.test (1 of 1); by name the other way.
    assert domains.index("x.test") < domains.index("bigcorp.test")
    assert '<td data-label="Bounce rate">100.0 %</td>' in domains
    by_name = rep_client.get(url + "?sort=domain").content.decode()
    assert by_name.index(">bigcorp.test<") < by_name.index(">x.test<")
    # The admin's team view counts the other rep's mail to x.test too (8 sent, 3 bounced).
    team = admin_client.get(url + "?scope=team").content.decode()
    assert '<td data-label="Sent">8</td>' in team
    # Each domain links to template analytics narrowed to it, keeping the chosen scope.
    assert 'href="/analytics/?range=30&amp;scope=team&amp;domain=bigcorp.test"' in team


def test_breakdown_pages_through_many_domains(
    acme: Tenant, rep_user: User, rep_identity: Identity, rep_client: Client
) -> None:
    from channels.models import TeamSendingSettings
    from reports.selectors import DOMAINS_PER_PAGE

    TeamSendingSettings.objects.update_or_create(tenant=acme, defaults={"spike_protection": False})
    for n in range(DOMAINS_PER_PAGE + 3):
        message = queue_message(acme, rep_user, rep_identity, to=f"a@d{n:03d}.test")
        assert pipeline.send_message(message.pk) == "sent"
        message.refresh_from_db()
        bounces.ingest(tenant=acme, raw=dsn_for(message, own_id=f"<p{n}@m>"))
    url = reverse("analytics:breakdown") + "?sort=domain"
    first = rep_client.get(url).content.decode()
    assert "Page 1 of 2" in first and ">d000.test<" in first and ">d050.test<" not in first
    second = rep_client.get(url + "&page=2").content.decode()
    assert "Page 2 of 2" in second and ">d050.test<" in second and ">d052.test<" in second
    assert ">d049.test<" not in second
    # A page past the end, or not a number, shows the last page or the first.
    assert "Page 2 of 2" in rep_client.get(url + "&page=9").content.decode()
    assert "Page 1 of 2" in rep_client.get(url + "&page=x").content.decode()


def test_the_domain_filter_narrows_templates_trend_drill_down_and_csv(
    history: dict,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    rep_client: Client,
    django_assert_max_num_queries,
) -> None:
    extra = queue_message(
        acme, rep_user, rep_identity, to="ceo@bigcorp.test", template=history["intro"]
    )
    assert pipeline.send_message(extra.pk) == "sent"
    extra.refresh_from_db()
    bounces.ingest(tenant=acme, raw=dsn_for(extra, own_id="<e@m>"))
    url = reverse("analytics:overview") + "?domain=BigCorp.test"
    with django_assert_max_num_queries(12):
        page = rep_client.get(url).content.decode()
    table = _row(page)
    assert '<td data-label="Sent">1</td>' in table and _reason("userunknown", 1) in table
    assert "1 sent and 1 bounced" in page
    drill = reverse("analytics:template_bounces", args=[history["intro"].pk])
    listed = rep_client.get(drill + "?domain=bigcorp.test").content.decode()
    assert "ceo@bigcorp.test" in listed and "p0@x.test" not in listed
    export = rep_client.get(
        reverse("analytics:template_bounces_csv", args=[history["intro"].pk]) + "?range=7"
    )
    body = b"".join(export.streaming_content).decode()
    assert body.startswith("sent_at,recipient,subject,reason,class,detail,reason_label\r\n")
    assert "ceo@bigcorp.test" in body and "p0@x.test" in body and "o0@x.test" not in body
    assert 'filename="bounced-intro-me-' in export["Content-Disposition"]
    # Another tenant's template is not there at all.
    other = Template.objects.create(
        tenant=history["globex"], owner=history["outsider"], name="X", subject="S", body="B"
    )
    assert (
        rep_client.get(reverse("analytics:template_bounces_csv", args=[other.pk])).status_code
        == 404
    )


@pytest.mark.parametrize(
    ("start", "end", "said", "not_said"),
    [
        ("2026-13-45", "2026-11-01", "Enter a valid date.", "Choose both dates"),
        ("", "2026-11-01", "Choose both dates of a custom range.", "Enter a valid date."),
    ],
)
def test_a_bad_custom_date_gets_one_clear_error(
    rep_client: Client, start: str, end: str, said: str, not_said: str
) -> None:
    query = {"range": "custom", "start": start, "end": end}
    page = rep_client.get(reverse("analytics:overview"), query).content.decode()
    assert said in page
    assert not_said not in page

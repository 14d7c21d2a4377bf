"""The campaign page in plain words: who has not started, why someone ended, what failed where."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from accounts.models import Tenant, User
from channels.models import BlockedDomain, Identity
from msc_admin.stored import stored
from sending import pipeline, services
from sending.models import (
    Campaign,
    CampaignStatus,
    CampaignStep,
    Contact,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    Suppression,
    SuppressionReason,
    Template,
)
from sending.services.suppressions import bounce_detail
from tests.mailservers import SmtpServer

pytestmark = pytest.mark.django_db


def _campaign(tenant: Tenant, owner: User, identity: Identity, delays: list[int]) -> Campaign:
    campaign = Campaign.objects.create(tenant=tenant, owner=owner, identity=identity, name="Q4")
    for position, delay in enumerate(delays, start=1):
        template = Template.objects.create(
            tenant=tenant, owner=owner, name=f"T{position}", subject=f"Step {position}", body="b"
        )
        CampaignStep.objects.create(
            campaign=campaign, position=position, template=template, delay_days=delay
        )
    return campaign


def _column(page: str, label: str) -> list[str]:
    return re.findall(rf'<td data-label="{label}">([^<]*)</td>', page)


def test_people_of_a_draft_campaign_have_not_started(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity, contact: Contact
) -> None:
    campaign = _campaign(acme, rep_user, rep_identity, [0, 3])
    response = rep_client.post(
        reverse("sending:enroll", args=[campaign.pk]),
        {"contacts": [contact.pk], "emails": "sam@prospect.test"},
    )
    assert response.status_code == 302
    assert Enrollment.objects.filter(campaign=campaign, status=EnrollmentStatus.ACTIVE).count() == 2
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT and not Message.objects.exists()

    page = rep_client.get(reverse("sending:campaign", args=[campaign.pk])).content.decode()
    assert _column(page, "Status") == ["Not started", "Not started"]
    assert "In progress" not in page


def test_a_bounce_ends_it_once_in_plain_words_and_later_steps_count_only_their_own_failures(
    rep_client: Client,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    relay: SmtpServer,
    contact: Contact,
    django_capture_on_commit_callbacks,
) -> None:
    campaign = _campaign(acme, rep_user, rep_identity, [0, 3])
    rep_client.post(
        reverse("sending:enroll", args=[campaign.pk]),
        {"contacts": [contact.pk], "emails": "sam@elsewhere.test"},
    )
    with django_capture_on_commit_callbacks(execute=True):
        rep_client.post(reverse("sending:campaign_action", args=[campaign.pk, "start"]))
    pat_first = Message.objects.get(contact=contact, campaign_step__position=1)
    assert pat_first.status == MessageStatus.SENT
    # Pat's first email bounces: Pat never reaches step 2 (its email is cancelled, not sent).
    services.message_bounced(message=pat_first)
    pat_second = Message.objects.get(contact=contact, campaign_step__position=2)
    assert pat_second.status == MessageStatus.CANCELLED and pat_second.sent_at is None
    # Sam reaches step 2, and it really fails there: Sam's domain was blocked meanwhile.
    BlockedDomain.objects.create(tenant=acme, domain="elsewhere.test")
    sam_second = Message.objects.get(to_email="sam@elsewhere.test", campaign_step__position=2)
    Message.objects.filter(pk=sam_second.pk).update(
        status=MessageStatus.QUEUED, next_attempt_at=timezone.now()
    )
    pipeline.send_message(sam_second.pk)
    sam_second.refresh_from_db()
    assert sam_second.status == MessageStatus.FAILED and "blocked" in sam_second.detail_text

    page = rep_client.get(reverse("sending:campaign", args=[campaign.pk])).content.decode()
    # Steps 1 and 2: sent (a bounced email was sent too), failed, bounced.
    assert _column(page, "Sent") == ["2", "0"]
    # The campaign analytics say the same of each step.
    analytics = rep_client.get(reverse("analytics:campaigns")).content.decode()
    assert _column(analytics, "Sent") == _column(page, "Sent")
    assert _column(page, "Bounced") == ["1", "0"]
    assert _column(page, "Failed") == ["0", "1"]
    assert _column(page, "Cancelled") == ["0", "1"]
    statuses = _column(page, "Status")
    assert sorted(statuses) == ["Ended: the email bounced", "In progress"]
    assert "campaign has ended" not in page
    # A step whose email went out (or was stopped) cannot be removed.
    assert "/remove/" not in page


@pytest.mark.django_db(transaction=True)
def test_mail_a_campaign_will_never_send_is_cancelled_not_failed(
    rep_client: Client,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    relay: SmtpServer,
    contact: Contact,
) -> None:
    """In autocommit, as served: a bounce ends Pat's campaign and the campaign is ended for
    Sam; their later steps are cancelled, shown in a Cancelled folder in words, never among
    the failures, in the feed's failures or in the figures."""
    from analytics.models import FeedKind, Notification, Rollup

    campaign = _campaign(acme, rep_user, rep_identity, [0, 3])
    rep_client.post(
        reverse("sending:enroll", args=[campaign.pk]),
        {"contacts": [contact.pk], "emails": "sam@elsewhere.test"},
    )
    rep_client.post(reverse("sending:campaign_action", args=[campaign.pk, "start"]))
    pat_first = Message.objects.get(contact=contact, campaign_step__position=1)
    assert pat_first.status == MessageStatus.SENT
    services.message_bounced(message=pat_first)
    # Sam's second step is queued (its time came) when the campaign is ended: the worker that
    # picks it up cancels it.
    sam_second = Message.objects.get(to_email="sam@elsewhere.test", campaign_step__position=2)
    Message.objects.filter(pk=sam_second.pk).update(
        status=MessageStatus.QUEUED, next_attempt_at=timezone.now(), scheduled_at=None
    )
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.ENDED)
    assert pipeline.send_message(sam_second.pk) == "cancelled"
    sent_before = sum(Rollup.objects.values_list("sent", flat=True))

    cancelled = Message.objects.filter(status=MessageStatus.CANCELLED)
    assert cancelled.count() == 2 and not Message.objects.filter(status=MessageStatus.FAILED)
    assert not Notification.objects.filter(kind=FeedKind.FAILED).exists()
    assert sum(Rollup.objects.values_list("sent", flat=True)) == sent_before == 2

    failed = rep_client.get(reverse("sending:outbox_folder", args=["failed"])).content.decode()
    assert "No failed emails." in failed
    assert 'data-folder="failed">Failed <span class="count">0</span>' in failed
    assert 'data-folder="cancelled">Cancelled <span class="count">2</span>' in failed
    page = rep_client.get(reverse("sending:outbox_folder", args=["cancelled"])).content.decode()
    assert page.count('data-status="cancelled"') == 2
    assert (
        "Not sent: an earlier email of the campaign to this person bounced, which ended their "
        "campaign."
    ) in page
    assert "Not sent: the campaign was ended before it was due." in page
    assert "campaign has ended" not in page and "cannot be deleted" not in page
    assert "Retry" not in page


@pytest.mark.django_db(transaction=True)
def test_an_ended_campaigns_steps_cannot_be_removed(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    campaign = _campaign(acme, rep_user, rep_identity, [0, 3])
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.ENDED)
    page = rep_client.get(reverse("sending:campaign", args=[campaign.pk])).content.decode()
    assert "/remove/" not in page and ">Remove<" not in page
    step = campaign.steps.first()
    response = rep_client.post(
        reverse("sending:step_remove", args=[campaign.pk, step.pk]), follow=True
    )
    assert "This campaign has ended: its steps stay as they were." in response.content.decode()
    assert campaign.steps.count() == 2


@pytest.mark.django_db(transaction=True)  # a request path: autocommit, as served
def test_one_typo_in_a_pasted_list_enrols_the_rest_and_gives_the_typo_back(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    campaign = _campaign(acme, rep_user, rep_identity, [0])
    pasted = "ann@prospect.test, bob@prospect,\ncy@prospect.test not-an-address"
    response = rep_client.post(reverse("sending:enroll", args=[campaign.pk]), {"emails": pasted})
    page = response.content.decode()
    assert response.status_code == 200
    enrolled = Enrollment.objects.filter(campaign=campaign).values_list("contact__email", flat=True)
    assert sorted(enrolled) == ["ann@prospect.test", "cy@prospect.test"]
    assert "Enrolled 2 people." in page
    # The two that are not addresses come back in the field, with what is wrong with them.
    assert "Not email addresses: bob@prospect, not-an-address" in page
    assert re.search(r"<textarea[^>]*>\s*bob@prospect\nnot-an-address</textarea>", page)

    # Corrected and sent again, the typo goes in and nobody is enrolled twice.
    again = {"emails": "ann@prospect.test bob@prospect.test"}
    response = rep_client.post(reverse("sending:enroll", args=[campaign.pk]), again)
    assert response.status_code == 302
    assert Enrollment.objects.filter(campaign=campaign).count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_list_with_no_address_at_all_is_refused_and_kept(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    campaign = _campaign(acme, rep_user, rep_identity, [0])
    pasted = "\n".join(f"nobody{n}" for n in range(7))
    response = rep_client.post(reverse("sending:enroll", args=[campaign.pk]), {"emails": pasted})
    page = response.content.decode()
    assert response.status_code == 400 and not Enrollment.objects.exists()
    assert "Not email addresses: nobody0, nobody1, nobody2, nobody3, nobody4 (and 2 more)" in page
    assert pasted in page


@pytest.mark.django_db(transaction=True)
def test_enrolled_and_already_enrolled_each_take_their_own_plural(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    User.objects.filter(pk=rep_user.pk).update(language="pt-br")
    campaign = _campaign(acme, rep_user, rep_identity, [0])
    url = reverse("sending:enroll", args=[campaign.pk])
    rep_client.post(url, {"emails": "a@prospect.test"})
    response = rep_client.post(url, {"emails": "a@prospect.test b@prospect.test c@prospect.test"})
    page = rep_client.get(response["Location"]).content.decode()
    assert "2 pessoas inscritas (1 já inscrita)." in page
    response = rep_client.post(url, {"emails": "a@prospect.test b@prospect.test d@prospect.test"})
    page = rep_client.get(response["Location"]).content.decode()
    assert "1 pessoa inscrita (2 já inscritas)." in page


@pytest.mark.django_db(transaction=True)
def _names_enrolled(campaign: Campaign) -> dict[str, tuple[str, str]]:
    """Who the campaign enrolled: address -> (first name, last name) of their contact."""
    return {
        e.contact.email: (e.contact.first_name, e.contact.last_name)
        for e in Enrollment.objects.filter(campaign=campaign).select_related("contact")
    }


def test_pasted_names_with_addresses_are_enrolled_with_their_names(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    Contact.objects.create(
        tenant=acme, owner=rep_user, email="kept@prospect.test", first_name="Kept", last_name="Name"
    )
    campaign = _campaign(acme, rep_user, rep_identity, [0])
    pasted = (
        "Ana Souza Lima <Ana@Prospect.test>\n"
        '"Iyer, Ravi" <ravi@prospect.test>; bo@prospect.test, Someone Else <kept@prospect.test>\n'
        "Broken Name <broken@>"
    )
    response = rep_client.post(reverse("sending:enroll", args=[campaign.pk]), {"emails": pasted})
    page = response.content.decode()
    assert response.status_code == 200
    people = _names_enrolled(campaign)
    assert people == {
        "ana@prospect.test": ("Ana", "Souza Lima"),
        "ravi@prospect.test": ("Ravi", "Iyer"),
        "bo@prospect.test": ("", ""),
        "kept@prospect.test": ("Kept", "Name"),  # a contact's own name is never replaced
    }
    assert "Enrolled 4 people." in page
    # What is not an address comes back whole, name included, to be corrected.
    assert re.search(r"<textarea[^>]*>\s*Broken Name &lt;broken@&gt;</textarea>", page)


def test_a_pasted_line_that_is_not_an_address_comes_back_whole_and_names_are_kept(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    campaign = _campaign(acme, rep_user, rep_identity, [0])
    pasted = (
        "this is not an address\n"
        "Carl Smith carl@prospect.test\n"
        "Souza, Ana Maria <ams@prospect.test>\n"
        "a@prospect.test b@prospect.test"
    )
    response = rep_client.post(reverse("sending:enroll", args=[campaign.pk]), {"emails": pasted})
    page = response.content.decode()
    people = _names_enrolled(campaign)
    assert people == {
        "carl@prospect.test": ("Carl", "Smith"),
        "ams@prospect.test": ("Ana Maria", "Souza"),
        "a@prospect.test": ("", ""),
        "b@prospect.test": ("", ""),
    }
    assert "Not an email address: this is not an address" in page
    assert re.search(r"<textarea[^>]*>\s*this is not an address</textarea>", page)


@pytest.mark.django_db(transaction=True)
def test_someone_suppressed_after_enrolment_reads_suppressed_and_why_not_not_started(
    rep_client: Client,
    admin_client: Client,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    contact: Contact,
) -> None:
    campaign = _campaign(acme, rep_user, rep_identity, [0])
    rep_client.post(
        reverse("sending:enroll", args=[campaign.pk]),
        {"emails": "Pat@prospect.test, sam@prospect.test"},
    )
    when = timezone.now()
    Suppression.objects.create(
        tenant=acme,
        address="pat@prospect.test",
        reason=SuppressionReason.HARD_BOUNCE,
        detail=stored(bounce_detail(hard=True, code="550 5.1.1", when=when, subject="Intro")),
    )
    url = reverse("sending:campaign", args=[campaign.pk])
    page = rep_client.get(url).content.decode()
    day = date_format(timezone.localtime(when).date(), "DATE_FORMAT")
    assert f"Suppressed: Hard bounce 550 5.1.1 on {day}, from “Intro”" in page
    assert sorted(_column(page, "Status")) == [
        "Not started",  # sam
        f"Suppressed: Hard bounce 550 5.1.1 on {day}, from “Intro”",
    ]
    link = f'href="{reverse("sending:suppressions")}?q=pat%40prospect.test"'
    assert link not in page  # only an admin can take the address off the list
    assert link in admin_client.get(url).content.decode()


@pytest.mark.django_db(transaction=True)
def test_people_already_enrolled_cannot_be_ticked_again(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity, contact: Contact
) -> None:
    other = Contact.objects.create(tenant=acme, owner=rep_user, email="new@prospect.test")
    campaign = _campaign(acme, rep_user, rep_identity, [0])
    rep_client.post(reverse("sending:enroll", args=[campaign.pk]), {"contacts": [contact.pk]})
    page = rep_client.get(reverse("sending:campaign", args=[campaign.pk])).content.decode()
    ticked = re.search(rf'<input[^>]*value="{contact.pk}"[^>]*>\s*[^<]*', page)
    assert ticked and "disabled" in ticked.group(0)
    assert "pat@prospect.test (already enrolled)" in ticked.group(0)
    free = re.search(rf'<input[^>]*value="{other.pk}"[^>]*>', page)
    assert free and "disabled" not in free.group(0)
    assert Enrollment.objects.filter(campaign=campaign).count() == 1


def test_people_read_by_name_first_then_address(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    campaign = _campaign(acme, rep_user, rep_identity, [0])
    pasted = "Ana Souza <ana@prospect.test>\n=?utf-8?q?Jos=C3=A9_Lima?= <jose@prospect.test>"
    rep_client.post(reverse("sending:enroll", args=[campaign.pk]), {"emails": pasted})
    rep_client.post(reverse("sending:enroll", args=[campaign.pk]), {"emails": "bo@prospect.test"})
    page = rep_client.get(reverse("sending:campaign", args=[campaign.pk])).content.decode()
    cells = re.findall(r'<td data-label="Person">(.*?)</td>', page, re.S)
    people = [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in cells]
    assert sorted(people) == [
        "Ana Souza ana@prospect.test",
        "José Lima jose@prospect.test",  # an encoded name, as the mail client copied it
        "bo@prospect.test",  # no name: the address alone
    ]
    assert '<span class="person-name">Ana Souza</span>' in page

"""Outbox, compose, templates, contacts, campaigns and the JSON endpoint, through the client."""

from __future__ import annotations

import html
import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role, Tenant, User
from channels.models import BlockedDomain, Channel, Identity
from sending import pipeline, services
from sending.models import (
    CAMPAIGN_ENDED_BOUNCE,
    ApiToken,
    Campaign,
    CampaignStatus,
    CampaignStep,
    Contact,
    ContactImport,
    Enrollment,
    EnrollmentStatus,
    Hold,
    Message,
    MessageStatus,
    Template,
)
from tests.factories import MembershipFactory
from tests.mailservers import SmtpServer
from tests.sending.conftest import gmail_channel, queue_message

pytestmark = pytest.mark.django_db


def test_outbox_folders_show_where_each_message_is_and_why(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity, relay: SmtpServer
) -> None:
    sent = queue_message(acme, rep_user, rep_identity, to="a@prospect.test")
    pipeline.send_message(sent.pk)
    held = queue_message(acme, rep_user, rep_identity, to="b@prospect.test")
    later = timezone.now() + timedelta(minutes=7)
    Message.objects.filter(pk=held.pk).update(
        hold=Hold.BACKOFF, next_attempt_at=later, status_detail="Team channel asked us to slow down"
    )
    response = rep_client.get(reverse("sending:outbox"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "b@prospect.test" in body and "Provider back-off" in body
    assert "asked us to slow down" in body and f'datetime="{later.isoformat()[:16]}' in body
    assert "a@prospect.test" not in body  # it is in Sent
    sent_page = rep_client.get(reverse("sending:outbox_folder", args=["sent"])).content.decode()
    assert "a@prospect.test" in sent_page and "b@prospect.test" not in sent_page
    assert rep_client.get(reverse("sending:outbox_folder", args=["nonsense"])).status_code == 404


def test_the_outbox_live_region_answers_htmx_with_only_the_partial(
    rep_client: Client, rep_identity: Identity, acme: Tenant, rep_user: User
) -> None:
    queue_message(acme, rep_user, rep_identity)
    response = rep_client.get(
        reverse("sending:outbox"), headers={"HX-Request": "true", "HX-Target": "outbox-live"}
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="outbox-live"') and "<html" not in body


def test_reps_see_only_their_own_messages_and_admins_may_see_the_team(
    rep_client: Client,
    admin_client: Client,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    outsider_client: Client,
) -> None:
    message = queue_message(acme, rep_user, rep_identity, to="mine@prospect.test")
    other = MembershipFactory(tenant=acme, role=Role.REP, user__email="other@acme.test").user
    from channels import services as channel_services

    other_identity = channel_services.identity_ensure_default(user=other, tenant=acme)
    theirs = queue_message(acme, other, other_identity, to="theirs@prospect.test")
    body = rep_client.get(reverse("sending:outbox") + "?scope=team").content.decode()
    assert "mine@prospect.test" in body and "theirs@prospect.test" not in body
    team = admin_client.get(reverse("sending:outbox") + "?scope=team").content.decode()
    assert "mine@prospect.test" in team and "theirs@prospect.test" in team
    assert rep_client.post(reverse("sending:delete", args=[theirs.pk])).status_code == 404
    assert outsider_client.post(reverse("sending:delete", args=[message.pk])).status_code == 404
    assert outsider_client.post(reverse("sending:retry", args=[message.pk])).status_code == 404
    assert Message.objects.filter(pk__in=[message.pk, theirs.pk]).count() == 2


def test_compose_sends_through_the_identitys_channel(
    rep_client: Client,
    acme: Tenant,
    rep_identity: Identity,
    relay: SmtpServer,
    django_capture_on_commit_callbacks,
) -> None:
    Contact.objects.create(tenant=acme, email="pat@prospect.test", first_name="Pat")
    with django_capture_on_commit_callbacks(execute=True):
        response = rep_client.post(
            reverse("sending:compose"),
            {
                "identity": rep_identity.pk,
                "to": "Pat@Prospect.test",
                "subject": "Hi {{first_name}}",
                "body": "Hello {{first_name}}, from {{sender_name}}.",
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    message = Message.objects.get()
    assert message.subject == "Hi Pat" and message.status == MessageStatus.SENT
    assert message.body == f"Hello Pat, from {rep_identity.name}."
    assert message.to_email == "pat@prospect.test" and message.contact is not None
    assert len(relay.received.messages) == 1


def test_compose_preview_and_errors(
    rep_client: Client, acme: Tenant, rep_identity: Identity
) -> None:
    BlockedDomain.objects.create(tenant=acme, domain="rival.test")
    url = reverse("sending:compose")
    preview = rep_client.post(
        url,
        {
            "identity": rep_identity.pk,
            "to": "x@prospect.test",
            "subject": "Hi {{first_name|there}}",
            "body": "Dear {{first_name}}",
            "action": "preview",
        },
        headers={"HX-Request": "true"},
    ).content.decode()
    assert preview.lstrip().startswith('<section class="card" id="preview"')
    assert "Hi there" in preview and "No value for first_name" in preview
    cases = [
        ({"to": "x@rival.test"}, "rival.test is on your team&#x27;s list of blocked domains"),
        ({"subject": "Hi\r\nBcc: all@example.com"}, "contains a line break"),
        ({"body": "{{favourite_colour}}"}, "Unknown merge field {{favourite_colour}}"),
        ({"to": "not-an-address"}, "Enter a valid email address"),
        ({"send_at": "2001-01-01T10:00"}, "That time has passed"),
    ]
    for change, error in cases:
        data = {"identity": rep_identity.pk, "to": "x@prospect.test", "subject": "s", "body": "b"}
        response = rep_client.post(url, {**data, **change})
        assert response.status_code == 400 and error in response.content.decode(), change
    # A subject too long is told so, not also "write a subject": one was written.
    data = {"identity": rep_identity.pk, "to": "x@prospect.test", "body": "b"}
    page = rep_client.post(url, {**data, "subject": "s" * 400}).content.decode()
    assert "at most 300 characters" in page and "Write a subject" not in page
    assert Message.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_broken_merge_field_is_refused_alike_by_compose_templates_and_the_api(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    """One validator: "Hi {{first_name" would be sent as typed; compose (preview and send),
    the template form and the plugins' endpoint each refuse it with the same sentence."""
    from sending.services import api_token_create

    error = "“{{first_name” is not a complete merge field: write it as {{first_name}}."
    data = {"identity": rep_identity.pk, "to": "x@prospect.test", "body": "Hello"}
    for action in ("preview", "send"):
        response = rep_client.post(
            reverse("sending:compose"), {**data, "subject": "Hi {{first_name", "action": action}
        )
        assert response.status_code == 400, action
        assert html.escape(error) in response.content.decode(), action
    closing = rep_client.post(
        reverse("sending:compose"), {**data, "subject": "Hi", "body": "Dear last_name}},"}
    )
    assert closing.status_code == 400
    assert html.escape(
        "“last_name}}” is not a complete merge field: write it as {{last_name}}."
    ) in (closing.content.decode())
    template = rep_client.post(
        reverse("sending:template_new"), {"name": "T", "subject": "Hi {{first_name", "body": "x"}
    )
    assert template.status_code == 400 and html.escape(error) in template.content.decode()
    _, token = api_token_create(tenant=acme, user=rep_user, name="plugin")
    api = Client().post(
        "/api/v1/messages",
        {"to": "x@prospect.test", "subject": "Hi {{first_name", "body": "Hello"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 400 and api.json()["error"] == error
    assert not Message.objects.exists() and not Template.objects.exists()


def test_retry_and_delete(
    rep_client: Client,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    relay: SmtpServer,
    django_capture_on_commit_callbacks,
) -> None:
    failed = queue_message(acme, rep_user, rep_identity)
    Message.objects.filter(pk=failed.pk).update(status=MessageStatus.FAILED, status_detail="550 x")
    with django_capture_on_commit_callbacks(execute=True):
        response = rep_client.post(reverse("sending:retry", args=[failed.pk]))
    assert response.status_code == 302
    failed.refresh_from_db()
    assert failed.status == MessageStatus.SENT
    uncertain = queue_message(acme, rep_user, rep_identity, to="u@prospect.test")
    Message.objects.filter(pk=uncertain.pk).update(status=MessageStatus.FAILED, uncertain=True)
    rep_client.post(reverse("sending:retry", args=[uncertain.pk]))
    assert Message.objects.get(pk=uncertain.pk).status == MessageStatus.FAILED  # needs confirmation
    rep_client.post(reverse("sending:retry", args=[uncertain.pk]), {"confirm": "yes"})
    assert Message.objects.get(pk=uncertain.pk).status in (MessageStatus.QUEUED, MessageStatus.SENT)
    doomed = queue_message(acme, rep_user, rep_identity, to="d@prospect.test")
    Message.objects.filter(pk=doomed.pk).update(status=MessageStatus.FAILED)
    assert rep_client.post(reverse("sending:delete", args=[doomed.pk])).status_code == 302
    assert not Message.objects.filter(pk=doomed.pk).exists()
    # A sent message cannot be deleted.
    rep_client.post(reverse("sending:delete", args=[failed.pk]))
    assert Message.objects.filter(pk=failed.pk).exists()


def test_templates_validate_merge_fields_and_respect_privacy(
    rep_client: Client, admin_client: Client, acme: Tenant, rep_user: User
) -> None:
    url = reverse("sending:template_new")
    bad = rep_client.post(url, {"name": "T", "subject": "Hi {{frist_name}}", "body": "x"})
    assert bad.status_code == 400 and "Unknown merge field {{frist_name}}" in bad.content.decode()
    ok = rep_client.post(
        url, {"name": "Intro", "subject": "Hi {{first_name|there}}", "body": "Hello {{company}}"}
    )
    assert ok.status_code == 302
    private = Template.objects.get(name="Intro")
    assert private.owner == rep_user and not private.shared
    page = rep_client.get(reverse("sending:template_edit", args=[private.pk])).content.decode()
    assert "Hi Pat" in page and "Hello Example Inc." in page
    assert admin_client.get(reverse("sending:template_edit", args=[private.pk])).status_code == 404
    Template.objects.filter(pk=private.pk).update(shared=True)
    assert admin_client.get(reverse("sending:template_edit", args=[private.pk])).status_code == 200


def test_csv_import_shows_progress_and_per_row_errors(
    rep_client: Client, acme: Tenant, django_capture_on_commit_callbacks
) -> None:
    Contact.objects.create(tenant=acme, email="old@prospect.test", first_name="Old")
    csv = (
        b"Email,First Name,Company\n"
        b"new@prospect.test,Nia,Prospect\n"
        b"OLD@prospect.test,Olga,Prospect\n"
        b"not-an-email,Bad,Row\n"
        b",Empty,Row\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = rep_client.post(
            reverse("sending:contact_import"),
            {"file": SimpleUploadedFile("leads.csv", csv, content_type="text/csv")},
        )
    assert response.status_code == 302
    job = ContactImport.objects.get()
    assert (job.total_rows, job.created_count, job.updated_count, job.error_count) == (4, 1, 1, 2)
    page = rep_client.get(response["Location"]).content.decode()
    assert "Finished" in page and 'value="100"' in page
    assert "“not-an-email” is not a valid email address." in page and "No email address." in page
    assert Contact.objects.get(email="old@prospect.test").first_name == "Olga"
    assert job.data == ""
    bad = rep_client.post(
        reverse("sending:contact_import"),
        {"file": SimpleUploadedFile("x.csv", b"name\nBob\n", content_type="text/csv")},
    )
    assert bad.status_code == 400 and "one called “email”" in bad.content.decode()


def _campaign(acme: Tenant, rep_user: User, identity: Identity, delays: list[int]) -> Campaign:
    campaign = Campaign.objects.create(tenant=acme, owner=rep_user, identity=identity, name="Q4")
    for position, delay in enumerate(delays, start=1):
        template = Template.objects.create(
            tenant=acme,
            owner=rep_user,
            name=f"T{position}",
            subject=f"Step {position} for {{{{first_name}}}}",
            body="b",
        )
        CampaignStep.objects.create(
            campaign=campaign, position=position, template=template, delay_days=delay
        )
    return campaign


def test_a_campaign_sends_step_by_step_and_a_bounce_ends_it_for_that_person(
    rep_client: Client,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    relay: SmtpServer,
    contact: Contact,
    django_capture_on_commit_callbacks,
) -> None:
    campaign = _campaign(acme, rep_user, rep_identity, [0, 3])
    url = reverse("sending:enroll", args=[campaign.pk])
    assert (
        rep_client.post(url, {"contacts": [contact.pk], "emails": "sam@prospect.test"}).status_code
        == 302
    )
    with django_capture_on_commit_callbacks(execute=True):
        rep_client.post(reverse("sending:campaign_action", args=[campaign.pk, "start"]))
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ACTIVE
    first = Message.objects.get(contact=contact, campaign_step__position=1)
    assert first.status == MessageStatus.SENT and first.subject == "Step 1 for Pat"
    second = Message.objects.get(contact=contact, campaign_step__position=2)
    assert second.status == MessageStatus.SCHEDULED
    assert abs((second.scheduled_at - first.sent_at) - timedelta(days=3)) < timedelta(seconds=1)

    services.message_bounced(message=first)
    enrollment = Enrollment.objects.get(contact=contact)
    assert enrollment.status == EnrollmentStatus.ENDED
    assert enrollment.ended_reason == CAMPAIGN_ENDED_BOUNCE
    second.refresh_from_db()
    assert second.status == MessageStatus.CANCELLED
    assert second.status_detail == CAMPAIGN_ENDED_BOUNCE
    assert not second.can_retry
    # Sam's campaign goes on.
    assert Message.objects.get(to_email="sam@prospect.test", campaign_step__position=2).status == (
        MessageStatus.SCHEDULED
    )
    # Campaign email cannot be deleted.
    response = rep_client.post(reverse("sending:delete", args=[second.pk]))
    assert Message.objects.filter(pk=second.pk).exists() and response.status_code == 302
    page = rep_client.get(reverse("sending:campaign", args=[campaign.pk])).content.decode()
    assert "Ended: the email bounced" in page


def test_pausing_holds_campaign_mail_and_resuming_releases_it(
    rep_client: Client,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    relay: SmtpServer,
    contact: Contact,
) -> None:
    campaign = _campaign(acme, rep_user, rep_identity, [0])
    services.campaign_enroll(campaign=campaign, contacts=[contact])
    services.campaign_start(campaign=campaign)
    rep_client.post(reverse("sending:campaign_action", args=[campaign.pk, "pause"]))
    message = Message.objects.get()
    assert pipeline.send_message(message.pk) == "held:paused"
    message.refresh_from_db()
    assert message.hold == Hold.PAUSED and message.status == MessageStatus.QUEUED
    rep_client.post(reverse("sending:campaign_action", args=[campaign.pk, "resume"]))
    assert pipeline.send_message(message.pk) == "sent"
    rep_client.post(reverse("sending:campaign_action", args=[campaign.pk, "end"]))
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.ENDED
    assert Enrollment.objects.get().status == EnrollmentStatus.FINISHED


def test_starting_needs_steps_and_a_route(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    campaign = Campaign.objects.create(
        tenant=acme, owner=rep_user, identity=rep_identity, name="Empty"
    )
    response = rep_client.post(
        reverse("sending:campaign_action", args=[campaign.pk, "start"]), follow=True
    )
    assert "Add at least one step" in response.content.decode()
    assert Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.DRAFT


def _token(client: Client) -> str:
    page = client.post(reverse("sending:api_tokens"), {"name": "Gmail plugin"}).content.decode()
    return page.split('<code class="token">')[1].split("<")[0]


def test_the_plugins_submit_sends_with_their_source(
    rep_client: Client,
    acme: Tenant,
    rep_user: User,
    rep_identity: Identity,
    django_capture_on_commit_callbacks,
) -> None:
    token = _token(rep_client)
    stored = ApiToken.objects.get()
    assert stored.digest != token and token.startswith("msc_") and token not in stored.digest
    gmail = gmail_channel(acme, rep_user)
    client = Client()
    url = reverse("sending:api_messages")
    payload = {
        "to": "pat@prospect.test",
        "subject": "Hi",
        "body": "Hello",
        "source": "gmail_plugin",
    }
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            url,
            json.dumps(payload),
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 202, response.content
    data = response.json()
    message = Message.objects.get(pk=data["id"])
    assert message.source == "gmail_plugin" and message.channel == gmail
    assert message.from_email == rep_user.email and data["message_id"] == message.message_id

    api = client.post(
        url,
        json.dumps({**payload, "source": "api"}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert api.status_code == 202 and Message.objects.get(pk=api.json()["id"]).channel == (
        Channel.objects.get(owner__isnull=True)
    )


def test_the_json_endpoint_refuses_clearly(
    rep_client: Client, acme: Tenant, rep_identity: Identity, outsider_client: Client
) -> None:
    url = reverse("sending:api_messages")
    token = _token(rep_client)
    auth = {"Authorization": f"Bearer {token}"}
    assert Client().post(url, "{}", content_type="application/json").status_code == 401
    assert (
        Client()
        .post(
            url,
            "{}",
            content_type="application/json",
            headers={"Authorization": "Bearer msc_wrong"},
        )
        .status_code
        == 401
    )
    assert Client().post(url, "[", content_type="application/json", headers=auth).status_code == 400
    fields = (
        Client()
        .post(url, json.dumps({"source": "web"}), content_type="application/json", headers=auth)
        .json()
    )
    assert set(fields["fields"]) >= {"to", "subject", "body", "source"}
    BlockedDomain.objects.create(tenant=acme, domain="rival.test")
    blocked = Client().post(
        url,
        json.dumps({"to": "a@rival.test", "subject": "s", "body": "b"}),
        content_type="application/json",
        headers=auth,
    )
    assert blocked.status_code == 400 and "blocked" in blocked.json()["error"]
    no_gmail = Client().post(
        url,
        json.dumps({"to": "a@b.test", "subject": "s", "body": "b", "source": "gmail_plugin"}),
        content_type="application/json",
        headers=auth,
    )
    assert no_gmail.status_code == 400 and "Connect Gmail" in no_gmail.json()["error"]
    assert Message.objects.count() == 0
    # Revoked: refused from then on; another tenant cannot revoke it.
    pk = ApiToken.objects.get().pk
    assert outsider_client.post(reverse("sending:api_token_revoke", args=[pk])).status_code == 404
    rep_client.post(reverse("sending:api_token_revoke", args=[pk]))
    assert (
        Client().post(url, "{}", content_type="application/json", headers=auth).status_code == 401
    )


def test_each_user_sees_todays_usage_and_headroom_per_connection(
    rep_client: Client, acme: Tenant, rep_user: User, rep_identity: Identity
) -> None:
    from sending import quota

    gmail = gmail_channel(acme, rep_user)
    team = gmail.tenant.sending
    for _ in range(3):
        assert isinstance(quota.reserve(gmail, quota.rules_for(gmail, team)[2:]), quota.Reservation)
    body = rep_client.get(reverse("sending:outbox")).content.decode()
    assert "Gmail limit: 2,000 messages in 24 hours" in body
    assert "3 / 2,000 · headroom 1,997" in body
    assert "Team throttling: 25 emails every 45 s" in body
    assert "Not throttled" in body  # the team SMTP channel

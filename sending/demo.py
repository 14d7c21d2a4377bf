"""Demo contacts, templates, campaigns and a month of sending history. Called by ``seed_demo``.

The history is written as rows (it happened "before" the demo started); everything sent from the
running demo goes through the real pipeline to the local relay.
"""

from __future__ import annotations

import random
from datetime import timedelta

from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Tenant, User
from channels.models import Channel, Identity
from channels.routing import Source, route
from sending import merge, mime
from sending.models import (
    Campaign,
    CampaignStatus,
    CampaignStep,
    Contact,
    Enrollment,
    EnrollmentStatus,
    Message,
    MessageStatus,
    Template,
)
from sending.services import domain_of

PEOPLE = [
    ("Pat", "Lee", "Initech"),
    ("Sam", "Ortiz", "Hooli"),
    ("Noor", "Khan", "Umbrella"),
    ("Jo", "Baker", "Stark Industries"),
    ("Ana", "Silva", "Wayne Enterprises"),
    ("Lee", "Park", "Cyberdyne"),
    ("Ravi", "Iyer", "Soylent"),
    ("Mia", "Novak", "Vandelay"),
    ("Tom", "Berg", "Wonka"),
    ("Eva", "Rossi", "Tyrell"),
    ("Kai", "Sato", "Oscorp"),
    ("Zoe", "Dubois", "Gringotts"),
]
# Addresses the demo's receiving servers refuse (see bounces.demo): mail to them bounces.
DEAD_CONTACTS = [
    ("Ravi", "Iyer", "Soylent", "former.ravi.iyer@soylent.example"),
    ("Mia", "Novak", "Vandelay", "full.mia.novak@vandelay.example"),
]
TEMPLATES = [
    (
        "Intro",
        "Quick question, {{first_name|there}}",
        "Hi {{first_name|there}},\n\nI noticed {{company|your team}} is growing. Would a 15-minute "
        "call next week be useful?\n\nBest,\n{{sender_name}}",
    ),
    (
        "Follow-up",
        "Re: quick question",
        "Hi {{first_name|there}},\n\nJust bringing this back to the top of your inbox.\n\n"
        "{{sender_name}}",
    ),
    (
        "Break-up",
        "Should I close your file?",
        "Hi {{first_name|there}},\n\nI have not heard back, so I will assume the timing is not "
        "right. Reply any time.\n\n{{sender_name}}",
    ),
]


def _history(
    tenant: Tenant,
    user: User,
    identity: Identity,
    channel: Channel,
    templates: list[Template],
    contacts: list[Contact],
) -> None:
    rng = random.Random(tenant.slug)  # noqa: S311 - demo data, reproducible
    now = timezone.now()
    # The Gmail plugin always sends through its sender's Gmail connection (``routing.route``):
    # its mail is seeded through that, and only where the sender has one.
    plugin = route(user=user, identity=identity, source=Source.GMAIL_PLUGIN).channel
    sources = [Source.WEB, Source.WEB, Source.API] + ([Source.GMAIL_PLUGIN] if plugin else [])
    rows = []
    for n in range(120):
        contact = contacts[n % len(contacts)]
        template = templates[n % len(templates)]
        sent_at = now - timedelta(days=rng.uniform(0.5, 30), minutes=n)
        roll = rng.random()
        source = rng.choice(sources)
        status = (
            MessageStatus.BOUNCED
            if roll < 0.05
            else MessageStatus.FAILED
            if roll < 0.08
            else MessageStatus.SENT
        )
        rows.append(
            Message(
                tenant=tenant,
                sender=user,
                identity=identity,
                channel=plugin if plugin and source == Source.GMAIL_PLUGIN else channel,
                source=source,
                template=template,
                contact=contact,
                to_email=contact.email,
                to_domain=domain_of(contact.email),
                from_email=identity.email,
                from_name=identity.name,
                subject=template.subject.replace("{{first_name|there}}", contact.first_name),
                body=template.body,
                message_id=mime.new_message_id(identity.email),
                status=status,
                status_detail={
                    MessageStatus.SENT: "250 2.0.0 Ok: queued",
                    MessageStatus.FAILED: "550 5.7.1 Message rejected as spam",
                    MessageStatus.BOUNCED: "550 5.1.1 The email account does not exist",
                }[status],
                smtp_code="250" if status == MessageStatus.SENT else "550",
                attempts=1,
                sent_at=sent_at if status != MessageStatus.FAILED else None,
                failed_at=sent_at if status == MessageStatus.FAILED else None,
                bounced_at=sent_at + timedelta(minutes=3)
                if status == MessageStatus.BOUNCED
                else None,
            )
        )
    _written_when_sent(Message.objects.bulk_create(rows))


def _finished_campaign(
    campaign: Campaign, identity: Identity, channel: Channel, contacts: list[Contact]
) -> None:
    """The ended campaign as it ran: each person was enrolled when it started, got every step
    at its delay, and finished."""
    assert campaign.started_at is not None
    started = campaign.started_at
    rows = []
    for contact in contacts:
        enrollment = Enrollment.objects.create(
            tenant=campaign.tenant,
            campaign=campaign,
            contact=contact,
            status=EnrollmentStatus.FINISHED,
            ended_at=started + timedelta(days=7, minutes=contact.pk),
        )
        values = merge.values_for(
            contact, email=contact.email, sender_name=identity.name, sender_email=identity.email
        )
        for step in campaign.steps.select_related("template"):
            text = merge.render(step.template.subject, step.template.body, values)
            rows.append(
                Message(
                    tenant=campaign.tenant,
                    sender=campaign.owner,
                    identity=identity,
                    channel=channel,
                    template=step.template,
                    campaign_step=step,
                    enrollment=enrollment,
                    contact=contact,
                    to_email=contact.email,
                    to_domain=domain_of(contact.email),
                    from_email=identity.email,
                    from_name=identity.name,
                    subject=text.subject,
                    body=text.body,
                    message_id=mime.new_message_id(identity.email),
                    status=MessageStatus.SENT,
                    status_detail="250 2.0.0 Ok: queued",
                    smtp_code="250",
                    attempts=1,
                    sent_at=started + timedelta(days=step.delay_days, minutes=contact.pk),
                )
            )
    # enrolled_at is set on creation (auto_now_add): they were enrolled when it started.
    Enrollment.objects.filter(campaign=campaign).update(enrolled_at=started)
    _written_when_sent(Message.objects.bulk_create(rows))


def _written_when_sent(made: list[Message]) -> None:
    """Seeded mail was written when it went (``created_at`` is set on save): the folders list
    the newest first by it."""
    at = Coalesce(F("sent_at"), F("failed_at"))
    Message.objects.filter(pk__in=[m.pk for m in made]).update(created_at=at, updated_at=at)


def seed_sending(tenants: dict[str, Tenant]) -> None:
    for slug, domain in (("acme", "acme.test"), ("globex", "globex.test")):
        tenant = tenants[slug]
        if Template.objects.filter(tenant=tenant).exists():
            continue  # already seeded
        admin = User.objects.get(email=f"admin@{domain}")
        rep = User.objects.get(email=f"rep@{domain}")
        contacts = [
            Contact.objects.create(
                tenant=tenant,
                owner=rep,
                email=f"{first.lower()}.{last.lower()}@{company.split()[0].lower()}.example",
                first_name=first,
                last_name=last,
                company=company,
            )
            for first, last, company in PEOPLE
        ]
        dead = [
            Contact.objects.create(
                tenant=tenant, owner=rep, email=email, first_name=first, last_name=last,
                company=company,
            )
            for first, last, company, email in DEAD_CONTACTS
        ]  # fmt: skip
        templates = [
            Template.objects.create(
                tenant=tenant, owner=admin, name=name, subject=subject, body=body, shared=True
            )
            for name, subject, body in TEMPLATES
        ]
        Template.objects.create(
            tenant=tenant,
            owner=rep,
            name="My private note",
            subject="Hello {{first_name|there}}",
            body="Hi {{first_name|there}}, great to meet you.\n\n{{sender_name}}",
        )
        identity = Identity.objects.get(user=rep, is_default=True)
        channel = (
            identity.channel or Channel.objects.filter(tenant=tenant, owner__isnull=True).first()
        )
        if channel is not None:
            _history(tenant, rep, identity, channel, templates, contacts)
        finished = Campaign.objects.create(
            tenant=tenant,
            owner=rep,
            identity=identity,
            name="Q3 webinar follow-up",
            status=CampaignStatus.ENDED,
            started_at=timezone.now() - timedelta(days=40),
            ended_at=timezone.now() - timedelta(days=10),
        )
        draft = Campaign.objects.create(
            tenant=tenant, owner=rep, identity=identity, name="Q4 outreach"
        )
        for campaign in (finished, draft):
            for position, (template, delay) in enumerate(zip(templates, (0, 3, 7), strict=True), 1):
                CampaignStep.objects.create(
                    campaign=campaign, position=position, template=template, delay_days=delay
                )
        if channel is not None:
            _finished_campaign(finished, identity, channel, contacts[6:10])
        for contact in [*contacts[:6], *dead]:
            Enrollment.objects.create(tenant=tenant, campaign=draft, contact=contact)

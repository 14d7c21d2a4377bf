"""Contacts, templates, campaigns and the messages sent to them.

A ``Message`` is the unit of sending. Its ``status`` moves scheduled → queued → sending → sent
(or failed, or later bounced); a campaign email whose person's campaign ended before it went is
cancelled, never failed. ``next_attempt_at`` says when it may be tried, so every wait (a
throttle window, a provider back-off, a retry) lives in the database, never in the broker.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Self

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy, gettext_noop, pgettext, pgettext_lazy

from accounts.models import Tenant, TenantOwned, TenantQuerySet
from channels.models import Channel, DomainCap, Identity
from channels.routing import Source
from msc_admin.stored import read


class Contact(TenantOwned):
    # Indexed by contact_unique_per_tenant.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="contacts", db_index=False
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    email = models.EmailField()
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    company = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "email"], name="contact_unique_per_tenant")
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class ImportStatus(models.TextChoices):
    PENDING = "pending", pgettext_lazy("import status", "Waiting to start")
    RUNNING = "running", pgettext_lazy("import status", "Importing")
    DONE = "done", pgettext_lazy("import status", "Finished")
    FAILED = "failed", pgettext_lazy("import status", "Failed")


class ContactImport(TenantOwned):
    """One CSV upload, processed by a task that reports progress and per-row errors."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    file_name = models.CharField(max_length=255)
    data = models.TextField(help_text="The uploaded CSV, decoded; cleared when the import ends.")
    status = models.CharField(
        max_length=10, choices=ImportStatus.choices, default=ImportStatus.PENDING
    )
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)  # [{"row": 3, "message": "..."}]
    error_count = models.PositiveIntegerField(default=0)
    # The imported people on the suppression list: imported, never mailed. [{"email", "why"}]
    suppressed = models.JSONField(default=list, blank=True)
    suppressed_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # When its task was last handed to the broker; a pending import is handed over again after
    # MSC_REDISPATCH_SECONDS (its task lost with the broker). The claim makes a repeat harmless.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)  # the last run's start
    runs = models.PositiveSmallIntegerField(default=0)  # runs started (a worker may die in one)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    def __str__(self) -> str:
        return self.file_name

    @property
    def percent(self) -> int:
        if self.status == ImportStatus.DONE:
            return 100
        return int(100 * self.processed_rows / self.total_rows) if self.total_rows else 0

    @property
    def is_finished(self) -> bool:
        return self.status in (ImportStatus.DONE, ImportStatus.FAILED)


class TemplateQuerySet(TenantQuerySet):
    def visible_to(self, user: Any) -> Self:
        """Shared templates and the user's own private ones."""
        return self.filter(Q(shared=True) | Q(owner=user))


class Template(TenantOwned):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="templates")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="templates"
    )
    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    shared = models.BooleanField(
        default=False, help_text=gettext_lazy("Everyone in the team can use it.")
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TemplateQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", pgettext_lazy("campaign status", "Draft")
    ACTIVE = "active", pgettext_lazy("campaign status", "Active")
    PAUSED = "paused", pgettext_lazy("campaign status", "Paused")
    ENDED = "ended", pgettext_lazy("campaign status", "Ended")


class CampaignQuerySet(TenantQuerySet):
    def visible_to(self, user: Any, *, team: bool) -> Self:
        return self if team else self.filter(owner=user)


class Campaign(TenantOwned):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="campaigns")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="campaigns"
    )
    identity = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.name


class CampaignStep(models.Model):
    # Indexed by step_position_unique.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="steps", db_index=False
    )
    position = models.PositiveSmallIntegerField()
    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="steps")
    delay_days = models.PositiveSmallIntegerField(
        default=0,
        help_text=gettext_lazy(
            "Days after the previous step (after enrolment for the first step)."
        ),
    )

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "position"], name="step_position_unique")
        ]

    def __str__(self) -> str:
        return f"Step {self.position} of {self.campaign}"


class EnrollmentStatus(models.TextChoices):
    ACTIVE = "active", pgettext_lazy("enrolment status", "In progress")
    FINISHED = "finished", pgettext_lazy("enrolment status", "Finished")
    ENDED = "ended", pgettext_lazy("enrolment status", "Ended")


class Enrollment(TenantOwned):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    # Indexed by enrol_once.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="enrollments", db_index=False
    )
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="enrollments")
    status = models.CharField(
        max_length=10, choices=EnrollmentStatus.choices, default=EnrollmentStatus.ACTIVE
    )
    ended_reason = models.CharField(max_length=200, blank=True)
    enrolled_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["enrolled_at", "pk"]
        constraints = [models.UniqueConstraint(fields=["campaign", "contact"], name="enrol_once")]

    def __str__(self) -> str:
        return f"{self.contact} in {self.campaign}"

    @property
    def status_text(self) -> str:
        """Where this person is, in words: "Not started" until the campaign starts, "Ended:
        the email bounced" (the reason once, in plain words)."""
        if self.status == EnrollmentStatus.ACTIVE:
            if self.campaign.status == CampaignStatus.DRAFT:
                return gettext("Not started")
            if self.campaign.status == CampaignStatus.PAUSED:
                return pgettext("enrolment status", "Paused")
        if self.status == EnrollmentStatus.ENDED:
            reason = ENDED_REASONS.get(self.ended_reason, self.ended_reason)
            if reason:
                return gettext("Ended: %(reason)s") % {"reason": reason}
            return pgettext("enrolment status", "Ended")
        return str(self.get_status_display())


# A refusal of one message, with the server's words as they were said (the evidence).
REFUSED = gettext_noop("The receiving server refused it: “%(words)s”")
_SERVER_WORDS = re.compile(r"[245]\d\d[ -]")


class MessageStatus(models.TextChoices):
    DRAFT = "draft", pgettext_lazy("email status", "Draft")
    SCHEDULED = "scheduled", pgettext_lazy("email status", "Scheduled")
    QUEUED = "queued", pgettext_lazy("email status", "Queued")
    SENDING = "sending", pgettext_lazy("email status", "Sending")
    SENT = "sent", pgettext_lazy("email status", "Sent")
    FAILED = "failed", pgettext_lazy("email status", "Failed")
    BOUNCED = "bounced", pgettext_lazy("email status", "Bounced")
    # Never sent, and never will be: the person's campaign ended before it was due.
    CANCELLED = "cancelled", pgettext_lazy("email status", "Cancelled")
    SUPPRESSED = "suppressed", pgettext_lazy("email status", "Suppressed")


class Hold(models.TextChoices):
    """Why a queued message is not going out right now (shown in the Outbox)."""

    NONE = "", "—"
    THROTTLE = "throttle", gettext_lazy("Throttling")
    CAP = "cap", gettext_lazy("Daily limit")
    BACKOFF = "backoff", gettext_lazy("Provider back-off")
    RETRY = "retry", gettext_lazy("Retrying")
    AUTH = "auth", gettext_lazy("Waiting for re-authentication")
    SPIKE = "spike", gettext_lazy("Channel paused: bounce spike")
    CHANNEL = "channel", gettext_lazy("Waiting for you to choose a channel")
    PAUSED = "paused", gettext_lazy("Campaign paused")
    DOMAIN_CAP = "domaincap", gettext_lazy("Receiving-domain limit")
    PROVIDER = "provider", gettext_lazy("Provider paused: bounce spike")


# What a message held for a channel (``Hold.CHANNEL``: its own was retired) asks of its sender.
# Stored as it is (a key compared by ``channel_hold_text``), shown in the reader's language.
HELD_FOR_CHANNEL = gettext_noop(
    "Its channel is no longer available: it waits until its sender sends it through another "
    "channel from the Outbox."
)

CAMPAIGN_ENDED_BOUNCE = "campaign has ended: email bounced"
CAMPAIGN_ENDED_SOFT = "campaign has ended: email bounced (soft, repeated)"
CAMPAIGN_ENDED_SUPPRESSED = "campaign has ended: address suppressed"
CAMPAIGN_ENDED_COMPLAINT = "campaign has ended: recipient complained"
CAMPAIGN_ENDED_REPLY = "campaign has ended: recipient replied"
CAMPAIGN_ENDED = "campaign has ended"
# A step's retry withdrawn: the soft bounce it retried was marked "not a bounce".
SOFT_BOUNCE_UNDONE = "retry withdrawn: not a bounce"
# The stored reasons are keys (compared by "not a bounce", counted by analytics); people read these.
ENDED_REASONS = {
    CAMPAIGN_ENDED_BOUNCE: gettext_lazy("the email bounced"),
    CAMPAIGN_ENDED_SOFT: gettext_lazy("the email bounced (soft, repeated)"),
    CAMPAIGN_ENDED_SUPPRESSED: gettext_lazy("the address is on the suppression list"),
    CAMPAIGN_ENDED_COMPLAINT: gettext_lazy("they marked an email as spam"),
    CAMPAIGN_ENDED_REPLY: gettext_lazy("they replied"),
    CAMPAIGN_ENDED: gettext_lazy("the campaign was ended"),
}
# Why a cancelled campaign email was not sent (its ``status_detail`` is the enrolment's reason).
CANCELLED_REASONS = {
    CAMPAIGN_ENDED_BOUNCE: gettext_lazy(
        "Not sent: an earlier email of the campaign to this person bounced, which ended their "
        "campaign."
    ),
    CAMPAIGN_ENDED_SOFT: gettext_lazy(
        "Not sent: earlier emails of the campaign to this person bounced (soft) again and "
        "again, which ended their campaign."
    ),
    CAMPAIGN_ENDED_SUPPRESSED: gettext_lazy(
        "Not sent: the address is on the suppression list, which ended this person's campaign."
    ),
    CAMPAIGN_ENDED_COMPLAINT: gettext_lazy(
        "Not sent: this person marked an earlier email of the campaign as spam, which ended "
        "their campaign."
    ),
    CAMPAIGN_ENDED_REPLY: gettext_lazy(
        "Not sent: this person replied to an earlier email of the campaign, which ended their "
        "campaign."
    ),
    CAMPAIGN_ENDED: gettext_lazy("Not sent: the campaign was ended before it was due."),
    SOFT_BOUNCE_UNDONE: gettext_lazy(
        "Not sent: this retry followed a soft bounce that was then marked “not a bounce”, so "
        "the step had reached the person."
    ),
}


def _choice_label(choices: type[models.TextChoices], value: str) -> str:
    """A stored choice in words (the reader's language); an unknown one as it is stored."""
    try:
        return str(choices(value).label)
    except ValueError:
        return value


class MessageQuerySet(TenantQuerySet):
    def visible_to(self, user: Any, *, team: bool) -> Self:
        return self if team else self.filter(sender=user)

    def pending(self) -> Self:
        return self.filter(status__in=[MessageStatus.SCHEDULED, MessageStatus.QUEUED])


class Message(TenantOwned):
    # Every change of status writes every index of this table (the status is in several), so
    # it has none that another one covers: the tenant's and the channel's own foreign-key
    # indexes are the leading columns of ``outbox_team`` and ``channel_queue``, and lookups by
    # recipient domain are the tenant's (``message_domain_sent``).
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages"
    )
    identity = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    channel = models.ForeignKey(
        Channel,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
        db_index=False,
    )
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.WEB)
    template = models.ForeignKey(
        Template, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    campaign_step = models.ForeignKey(
        CampaignStep, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    enrollment = models.ForeignKey(
        Enrollment, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    to_email = models.EmailField()
    to_domain = models.CharField(max_length=253)
    from_email = models.EmailField()
    from_name = models.CharField(max_length=200, blank=True)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    message_id = models.CharField(max_length=255, unique=True)

    status = models.CharField(
        max_length=10, choices=MessageStatus.choices, default=MessageStatus.QUEUED
    )
    hold = models.CharField(max_length=10, choices=Hold.choices, default=Hold.NONE, blank=True)
    status_detail = models.CharField(max_length=500, blank=True)
    smtp_code = models.CharField(max_length=3, blank=True)
    # The outcome is unknown: the worker stopped after handing the message to the server.
    uncertain = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    handed_over_at = models.DateTimeField(null=True, blank=True)

    scheduled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    # The bounce that counts for it was soft (mailbox full, greylisting): its campaign step is
    # tried again, and repeated ones are counted per address (``TeamSendingSettings``).
    bounced_soft = models.BooleanField(default=False)
    # What its recipient did with it, as read from the sender's inbox or an ESP's events
    # (``bounces.models.ResponseEvent``): the first complaint, reply and auto-reply each set
    # their time once, which is what makes the analytics count a message once.
    complained_at = models.DateTimeField(null=True, blank=True)
    replied_at = models.DateTimeField(null=True, blank=True)
    auto_replied_at = models.DateTimeField(null=True, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="message_due"),
            models.Index(fields=["tenant", "sender", "status", "-created_at"], name="outbox"),
            models.Index(fields=["tenant", "status", "-created_at"], name="outbox_team"),
            models.Index(fields=["channel", "status", "next_attempt_at"], name="channel_queue"),
            # Bounce-spike protection: the channel's mail of the last hour.
            models.Index(fields=["channel", "sent_at"], name="channel_recent"),
            # Analytics filtered by recipient domain read these messages directly.
            models.Index(fields=["tenant", "to_domain", "sent_at"], name="message_domain_sent"),
            # Bounce attribution: our token is a prefix of the Message-ID (LIKE 'x%' is served
            # by the pattern-operator index PostgreSQL's backend adds to every unique text
            # column), and the recipient + time fallback.
            models.Index(Lower("to_email"), "sent_at", name="message_recipient_sent"),
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {self.to_email}"

    @property
    def is_campaign(self) -> bool:
        return self.enrollment_id is not None

    @property
    def can_delete(self) -> bool:
        return not self.is_campaign and self.status not in (
            MessageStatus.SENDING,
            MessageStatus.SENT,
        )

    @property
    def can_retry(self) -> bool:
        return self.status == MessageStatus.FAILED

    @property
    def responses(self) -> list[tuple[str, str, datetime]]:
        """What its recipient did with it, for the Outbox: (kind, words, when), the complaint
        first. An auto-reply (out of office) is shown, and ends nothing."""
        if self.complained_at is None and self.replied_at is None and self.auto_replied_at is None:
            return []  # most rows: no words to translate (read for every row of the Outbox)
        found = [
            ("complained", gettext("Complained: marked as spam"), self.complained_at),
            ("replied", gettext("Replied"), self.replied_at),
            ("auto_replied", gettext("Auto-reply (out of office)"), self.auto_replied_at),
        ]
        return [(kind, words, at) for kind, words, at in found if at is not None]

    @property
    def detail_text(self) -> str:
        """Why the message is where it is, in words (``status_detail`` holds a key for a
        cancelled one)."""
        if self.status == MessageStatus.CANCELLED:
            reason = CANCELLED_REASONS.get(self.status_detail)
            return str(reason) if reason else gettext("Not sent: its campaign ended.")
        if self.status == MessageStatus.SENT and self.status_detail[:1] == "2":
            # The relay's own words ("250 2.0.0 Ok: queued as 4Fx…") are in ``server_reply``.
            return gettext("Accepted by the sending server.")
        if self.status == MessageStatus.FAILED and _SERVER_WORDS.match(self.status_detail):
            # A refusal stored as the server's bare words (before they were stored in a
            # sentence): the sentence around them, the words kept as they were said.
            return gettext(REFUSED) % {"words": self.status_detail}
        # A stored sentence (``msc_admin.stored``) reads in the reader's language; any other
        # text (a server's words, a row written before sentences were stored) as it is.
        return read(self.status_detail)

    @property
    def server_reply(self) -> str:
        """The server's answer to a sent message, as it said it (for a tooltip)."""
        return self.status_detail if self.status == MessageStatus.SENT else ""

    @property
    def channel_hold_text(self) -> str:
        """Why a message held for a channel (``Hold.CHANNEL``) cannot go through its own: it
        was retired, or it may not send as the message's From address."""
        if self.status_detail and self.status_detail != HELD_FOR_CHANNEL:
            return read(self.status_detail)
        return gettext("Its channel is no longer available.")


class SuppressionReason(models.TextChoices):
    HARD_BOUNCE = "hard_bounce", gettext_lazy("Hard bounce")
    COMPLAINT = "complaint", gettext_lazy("Complaint")
    ESP_DROPPED = "esp_dropped", gettext_lazy("Dropped by the email service")
    SOFT_REPEATED = "soft_repeated", gettext_lazy("Soft bounces repeated")
    MANUAL = "manual", gettext_lazy("Added by an admin")


# The causes a bounce's "not a bounce" (or its re-classification) takes back.
BOUNCE_REASONS = (SuppressionReason.HARD_BOUNCE, SuppressionReason.SOFT_REPEATED)


class Suppression(TenantOwned):
    """An address the team's mail never goes to again (until an admin removes it): every send
    path looks it up (``sending.services.suppressions``) before anything leaves. One row per
    address: the first cause is kept, a later one changes nothing."""

    # Indexed by suppression_once.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    address = models.CharField(max_length=320, help_text="Lower-cased.")
    reason = models.CharField(max_length=16, choices=SuppressionReason.choices)
    detail = models.CharField(max_length=500, blank=True)
    # The evidence: the message that bounced and its bounce event (a plain id: ``sending`` sits
    # below ``bounces`` and never imports it).
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    bounce_event_id = models.BigIntegerField(null=True, blank=True)
    # A complaint's evidence: its ``bounces.models.ResponseEvent`` (a plain id, as above).
    complaint_event_id = models.BigIntegerField(null=True, blank=True)
    bounced_at = models.DateTimeField(
        null=True, blank=True, help_text="When the bounce that is the evidence happened."
    )
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # Also the index of the one look-up every send makes.
            models.UniqueConstraint(fields=["tenant", "address"], name="suppression_once")
        ]
        # The home page counts the addresses added today; the list shows the newest first.
        indexes = [models.Index(fields=["tenant", "-created_at"], name="suppression_recent")]

    def __str__(self) -> str:
        return self.address

    def get_reason_display(self) -> str:  # type: ignore[no-redef]  # Django keeps a model's own
        """The reason in words. Django's own hashes every choice on each call, and the list
        reads it for each of its rows."""
        return _choice_label(SuppressionReason, self.reason)

    @property
    def why(self) -> str:
        """The reason in words, with its detail ("Hard bounce 550 5.1.1 on Nov 12, 2026, from
        …")."""
        return read(self.detail) or str(self.get_reason_display())

    @property
    def detail_beside_reason(self) -> str:
        """The detail for the list's "Why", beside its reason: without the reason's own words
        when it starts with them ("Hard bounce 550 5.1.1 on …" under "Hard bounce" reads
        "550 5.1.1 on …")."""
        text, label = read(self.detail), str(self.get_reason_display())
        if not text.casefold().startswith(label.casefold()):
            return text
        rest = text[len(label) :].lstrip(" :,;\u2014\u2013-")
        return f"{rest[:1].upper()}{rest[1:]}" if rest else ""

    @property
    def since(self) -> datetime:
        """The day that put the address on the list: its bounce's, else the entry's."""
        return self.bounced_at or self.created_at


class QuotaWindow(models.Model):
    """Shared, atomic send counters: one row per channel and rule (see ``sending.quota``)."""

    # Indexed by quota_window_unique.
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+", db_index=False)
    rule = models.CharField(max_length=10)
    window_start = models.FloatField(help_text="Unix time the current window began.")
    used = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "rule"], name="quota_window_unique")
        ]

    def __str__(self) -> str:
        return f"{self.channel_id}/{self.rule}: {self.used}"


class QuotaSlot(models.Model):
    """One send counted by a rolling window (see ``sending.quota``): it holds its place for the
    rule's ``seconds`` after ``at``, and is given back if its message never reached the server."""

    # Indexed by quota_slot_window.
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="+", db_index=False)
    rule = models.CharField(max_length=10)
    at = models.FloatField(help_text="Unix time the send took its slot.")

    class Meta:
        indexes = [models.Index(fields=["channel", "rule", "at"], name="quota_slot_window")]

    def __str__(self) -> str:
        return f"{self.channel_id}/{self.rule} at {self.at}"


class DomainCapSlot(models.Model):
    """One send counted by a tenant's receiving-domain cap (``sending.domainlimits``): it holds
    its place for the cap's hour or day after ``at``. A message takes at most one slot of a cap
    (a retry keeps the slot of its first try)."""

    # Indexed by domain_cap_slot_window.
    cap = models.ForeignKey(DomainCap, on_delete=models.CASCADE, related_name="+", db_index=False)
    message_id = models.BigIntegerField()
    at = models.FloatField(help_text="Unix time the send took its slot.")

    class Meta:
        indexes = [models.Index(fields=["cap", "at"], name="domain_cap_slot_window")]
        constraints = [
            models.UniqueConstraint(fields=["cap", "message_id"], name="domain_cap_slot_once")
        ]

    def __str__(self) -> str:
        return f"{self.cap_id} at {self.at}"


class ApiToken(TenantOwned):
    """A bearer token for the plugins' JSON endpoint. Only its SHA-256 is stored."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

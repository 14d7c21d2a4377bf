"""The bounce ledger: one row per failed recipient of one bounce message (or ESP event)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy, gettext_noop

import bounceparse
from accounts.models import Tenant, TenantOwned, TenantQuerySet
from channels.models import Channel
from msc_admin.stored import read, sentence
from sending.models import Message

RAW_CAP = 256 * 1024  # bytes of the raw bounce kept beside the parsed fields


class BounceSource(models.TextChoices):
    INBOX = "inbox", gettext_lazy("Sender's inbox")
    WEBHOOK = "webhook", gettext_lazy("ESP webhook")
    IMPORT = "import", gettext_lazy("Imported file")


class Attribution(models.TextChoices):
    MESSAGE_ID = "message_id", gettext_lazy("Message-ID in the returned headers")
    HEADER = "header", gettext_lazy("X-MSC-Message header")
    RECIPIENT = "recipient", gettext_lazy("Recipient and time")
    PROVIDER = "provider", gettext_lazy("ESP message id")
    NONE = "", gettext_lazy("Not matched")


class BounceEvent(TenantOwned):
    # Indexed by bounce_counted_once.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="bounce_events", db_index=False
    )
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.SET_NULL, related_name="bounce_events"
    )
    # Indexed by bounce_message.
    message = models.ForeignKey(
        Message,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="bounce_events",
        db_index=False,
    )
    source = models.CharField(max_length=10, choices=BounceSource.choices)
    # What makes two sightings the same bounce: the bounce's own Message-ID (or a hash of its
    # bytes, or the ESP's event id) and the recipient. Unique per tenant.
    dedupe_key = models.CharField(max_length=128)
    kind = models.CharField(max_length=12, default="bounce")
    recipient = models.EmailField(max_length=320)
    status = models.CharField(max_length=12, blank=True)
    smtp_code = models.CharField(max_length=3, blank=True)
    reason = models.CharField(max_length=24, blank=True)
    hard = models.BooleanField(default=False)
    diagnostic = models.CharField(max_length=500, blank=True)
    original_message_id = models.CharField(max_length=255, blank=True)
    attributed_by = models.CharField(
        max_length=10, choices=Attribution.choices, blank=True, default=Attribution.NONE
    )
    raw = models.BinaryField(blank=True, default=b"")
    raw_truncated = models.BooleanField(default=False)
    received_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # "Not a bounce" decided by the parser on a re-check (``bounces.reclassify``), not by a
    # person: a later parser that reads it as a bounce again may count it again.
    undone_by_parser = models.BooleanField(default=False)
    # What decided the verdict (``bounceparse.Evidence.as_dict``: source, rule, detail, format)
    # and which parser reached it; both empty on rows recorded before the parser said so.
    evidence = models.JSONField(default=dict, blank=True)
    parser_version = models.CharField(max_length=16, blank=True, default="")

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "dedupe_key"], name="bounce_counted_once")
        ]
        indexes = [
            models.Index(fields=["tenant", "-received_at"], name="bounce_tenant_recent"),
            models.Index(fields=["message"], name="bounce_message"),
        ]

    def __str__(self) -> str:
        return f"{self.reason or self.kind} for {self.recipient}"

    @property
    def counted(self) -> bool:
        return self.message_id is not None and self.undone_at is None

    @property
    def undone_by_person(self) -> bool:
        return self.undone_at is not None and not self.undone_by_parser

    @property
    def explained(self) -> str:
        """How the parser reached this verdict, in one sentence of the active language ("Hard:
        the receiving server said 550 5.1.1 'user unknown' in the delivery report."); empty when
        the parser that recorded it kept no evidence."""
        from bounces.explain import describe

        if not self.evidence or self.kind != bounceparse.BOUNCE:
            return ""
        evidence = bounceparse.Evidence(
            **{
                key: str(self.evidence.get(key, ""))
                for key in ("source", "rule", "detail", "format")
            }
        )
        recipient = bounceparse.Recipient(
            address=self.recipient,
            status=self.status,
            smtp_code=self.smtp_code,
            reason=self.reason,
            hard=self.hard,
            diagnostic=self.diagnostic,
            evidence=evidence,
        )
        return describe(recipient)


class ResponseKind(models.TextChoices):
    COMPLAINT = "complaint", gettext_lazy("Complaint (marked as spam)")
    REPLY = "reply", gettext_lazy("Reply")
    AUTO_REPLY = "auto_reply", gettext_lazy("Auto-reply")


class ResponseEvent(TenantOwned):
    """What a recipient did with one of our messages, one row per report: a complaint (an ARF
    report in the sender's inbox, an ESP's spam report), a reply, or an auto-reply (out of
    office) found in the inbox. Counted once by its key, as bounces are; its effects (the
    campaign ends, the address is suppressed, the feed) are written in the same transaction."""

    # Indexed by response_counted_once.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="response_events"
    )
    source = models.CharField(max_length=10, choices=BounceSource.choices)
    kind = models.CharField(max_length=12, choices=ResponseKind.choices)
    # The report's own Message-ID (or a hash of its bytes, or the ESP's event id) and the kind.
    dedupe_key = models.CharField(max_length=128)
    recipient = models.CharField(max_length=320, blank=True)
    # What the report says in a few words: the feedback type ("abuse"), the reply's subject.
    detail = models.CharField(max_length=300, blank=True)
    original_message_id = models.CharField(max_length=255, blank=True)
    attributed_by = models.CharField(
        max_length=10, choices=Attribution.choices, blank=True, default=Attribution.NONE
    )
    raw = models.BinaryField(blank=True, default=b"")
    raw_truncated = models.BooleanField(default=False)
    received_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "dedupe_key"], name="response_counted_once")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} from {self.recipient or 'an unknown recipient'}"

    @property
    def detail_text(self) -> str:
        """``detail`` in the reader's language (a complaint's is a stored sentence)."""
        return read(self.detail)


class BounceRecheck(TenantOwned):
    """A bounce's verdict changed when its stored raw message was read again by the current
    parser (``manage.py reparse_bounces``, or an admin's "Re-check"): what it was, what it is."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    event = models.ForeignKey(BounceEvent, on_delete=models.CASCADE, related_name="rechecks")
    at = models.DateTimeField()
    # Who asked (an admin on the bounce's page); none for ``manage.py reparse_bounces``.
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    old_version = models.CharField(max_length=16, blank=True)
    new_version = models.CharField(max_length=16)
    old_reason = models.CharField(max_length=24, blank=True)
    old_hard = models.BooleanField()
    old_bounce = models.BooleanField(default=True)
    new_reason = models.CharField(max_length=24, blank=True)
    new_hard = models.BooleanField()
    # False: the parser no longer reads a bounce for this recipient (``new_kind`` says what).
    new_bounce = models.BooleanField(default=True)
    new_kind = models.CharField(max_length=12, default="bounce")

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"Re-check of bounce {self.event_id} at {self.at}"


class InboxCursor(TenantOwned):
    """Where the bounce scanner stopped in one folder of one channel's mailbox, and how that
    folder's last scan went.

    Read by IMAP: ``last_uid`` only ever moves forward, and only after the messages up to it
    were processed; a new ``uidvalidity`` (the server renumbered the folder) starts the folder
    over. Read through a provider's API (``bounces.reading``): ``token`` is the provider's
    opaque position (Gmail's historyId, Graph's delta or next link), stored only after the
    messages before it were processed; one the provider no longer knows starts the folder over
    from a date. Either way the ``bounce_counted_once`` constraint makes a re-read harmless.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    # Indexed by inbox_cursor_per_folder.
    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, related_name="inbox_cursors", db_index=False
    )
    folder = models.CharField(max_length=100, default="INBOX")
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    last_uid = models.BigIntegerField(default=0)
    token = models.TextField(blank=True)
    scanned_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(null=True)
    message = models.CharField(max_length=500, blank=True)
    read = models.PositiveIntegerField(default=0)
    found = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)

    objects = TenantQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "folder"], name="inbox_cursor_per_folder")
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.folder} after UID {self.last_uid}"


class EspProvider(models.TextChoices):
    SENDGRID = "sendgrid", "SendGrid"
    SPARKPOST = "sparkpost", "SparkPost"


class EspWebhook(TenantOwned):
    """Where a custom SMTP channel's ESP posts its events: ``/webhooks/<provider>/<key>/``,
    with HTTP Basic credentials ``msc:<secret>``. Only a hash of the secret is kept: it is shown
    once, when it is made."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    channel = models.OneToOneField(Channel, on_delete=models.CASCADE, related_name="esp_webhook")
    provider = models.CharField(max_length=12, choices=EspProvider.choices)
    key = models.CharField(max_length=40, unique=True)
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    events_received = models.PositiveIntegerField(default=0)
    bounces_recorded = models.PositiveIntegerField(default=0)

    objects = TenantQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.get_provider_display()} webhook of {self.channel}"


class BounceSpike(TenantOwned):
    """A channel paused because too much of its last hour's mail bounced (``bounces.spikes``),
    or, with ``provider`` and no channel, sending to one receiving provider's mailboxes paused
    because too much of the tenant's mail to them bounced. Open until an admin resumes, with or
    without undoing the wave's bounces."""

    class Outcome(models.TextChoices):
        OPEN = "", gettext_lazy("Open")
        RESUMED = "resumed", gettext_lazy("Resumed, bounces kept")
        UNDONE = "undone", gettext_lazy("Bounces undone, resumed")

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.CASCADE, related_name="bounce_spikes"
    )
    provider = models.CharField(max_length=10, blank=True)  # a key of channels.providers.GROUPS
    detected_at = models.DateTimeField()
    window_start = models.DateTimeField()  # mail sent since then was measured
    sent = models.PositiveIntegerField()
    bounced = models.PositiveIntegerField()
    threshold_pct = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default="", blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    undone = models.PositiveIntegerField(default=0)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-detected_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel"],
                condition=models.Q(resolved_at__isnull=True),
                name="one_open_spike",
            ),
            models.UniqueConstraint(
                fields=["tenant", "provider"],
                condition=models.Q(resolved_at__isnull=True) & ~models.Q(provider=""),
                name="one_open_provider_spike",
            ),
        ]

    def __str__(self) -> str:
        return f"Bounce spike on {self.channel_id or self.provider} at {self.detected_at}"

    @property
    def subject(self) -> str:
        """What was paused, in words: the channel's label, or "mail to Google mailboxes"."""
        if self.channel is not None:
            return self.channel.label
        from channels.providers import NAMES

        return sentence(
            gettext_noop("Mail to %(provider)s mailboxes"),
            provider=NAMES.get(self.provider, self.provider),
        )

    @property
    def rate(self) -> float:
        return self.bounced / self.sent if self.sent else 0.0

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

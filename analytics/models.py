"""The live feed: one row per thing a person should hear about, written in the same transaction
as the change it reports (a bounce recorded, …)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import pgettext_lazy

from accounts.models import Tenant, TenantOwned, TenantQuerySet
from msc_admin.stored import read


class FeedKind(models.TextChoices):
    BOUNCED = "bounced", pgettext_lazy("feed entry kind", "Bounced")
    FAILED = "failed", pgettext_lazy("feed entry kind", "Failed")
    SENT = "sent", pgettext_lazy("feed entry kind", "Sent")
    THROTTLED = "throttled", pgettext_lazy("feed entry kind", "Throttled")
    CHANNEL = "channel", pgettext_lazy("feed entry kind", "Channel needs attention")
    COMPLAINED = "complained", pgettext_lazy("feed entry kind", "Complaint")
    REPLIED = "replied", pgettext_lazy("feed entry kind", "Replied")
    AUTO_REPLIED = "auto_replied", pgettext_lazy("feed entry kind", "Auto-reply")


class Notification(TenantOwned):
    # Indexed by feed_team_recent.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=12, choices=FeedKind.choices)
    text = models.CharField(max_length=300)
    link = models.CharField(max_length=200, blank=True)
    # When the event it reports happened (the bounce arrived, the mail went), which is when the
    # entry is written, except for events recorded later: the demo's seeded month of history, a
    # mailbox read after an outage. The feed is ordered and paged by it.
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["tenant", "user", "-created_at"], name="feed_user_recent"),
            models.Index(fields=["tenant", "-created_at"], name="feed_team_recent"),
        ]

    def __str__(self) -> str:
        return self.words

    @property
    def words(self) -> str:
        """The entry in the reader's language (``msc_admin.stored``)."""
        return read(self.text)


class TeamDay(models.Model):
    """What every team roll-up row is keyed by: one day (of sending) of a whole team's mail
    through one channel, whoever sent it. The keys are plain ids, 0 for none, so the unique keys
    have no NULLs on any database."""

    # Indexed by each roll-up's one-row key.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    channel_key = models.PositiveBigIntegerField(default=0)

    class Meta:
        abstract = True


class DayOfMail(TeamDay):
    """What every roll-up row by sender is keyed by: one day (of sending) of one sender's mail
    through one channel."""

    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        abstract = True


class Figures(models.Model):
    """Mail sent, how much of it bounced (hard, soft), and how many of those messages their
    recipient complained about (marked as spam) or replied to (auto-replies not counted)."""

    sent = models.IntegerField(default=0)
    hard = models.IntegerField(default=0)
    soft = models.IntegerField(default=0)
    complained = models.IntegerField(default=0)
    replied = models.IntegerField(default=0)

    class Meta:
        abstract = True


class SentAndBounced(DayOfMail, Figures):
    """``Figures`` of one sender's day."""

    class Meta:
        abstract = True


class Rollup(SentAndBounced):
    """Mail sent on one day by one sender, per template, campaign step and channel, and how much
    of it bounced (hard, soft). Maintained in the transaction of each send and each bounce (and
    "not a bounce"); ``rebuild_rollups`` recomputes it from the raw tables."""

    template_key = models.PositiveBigIntegerField(default=0)
    step_key = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "sender", "template_key", "step_key", "channel_key"],
                name="rollup_one_row",
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "template_key", "day"], name="rollup_template"),
            models.Index(fields=["tenant", "step_key", "day"], name="rollup_step"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.sent} sent"


class ReasonRollup(DayOfMail):
    """Bounces per day (of sending), sender, template, channel and reason: "top reasons"."""

    template_key = models.PositiveBigIntegerField(default=0)
    reason = models.CharField(max_length=24)
    hard = models.BooleanField()
    count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "sender", "template_key", "channel_key", "reason", "hard"],
                name="reason_rollup_one_row",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.reason} {self.count}"


class DomainRollup(SentAndBounced):
    """Mail sent per day (of sending), sender, channel and recipient domain, and how much of it
    bounced: the breakdown by recipient domain."""

    domain = models.CharField(max_length=253)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "sender", "channel_key", "domain"],
                name="domain_rollup_one_row",
            )
        ]
        indexes = [
            # The breakdown page: rows with bounces or complaints in a range, then one page of
            # domains' mail.
            models.Index(
                fields=["tenant", "day"],
                name="domain_rollup_bounced",
                condition=models.Q(hard__gt=0) | models.Q(soft__gt=0) | models.Q(complained__gt=0),
            ),
            models.Index(fields=["tenant", "domain", "day"], name="domain_rollup_domain"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.domain} {self.sent} sent"


class DomainWeekRollup(SentAndBounced):
    """``DomainRollup`` summed by week: ``day`` is the week's Monday. Bumped in the same
    statement order as the daily rows, rebuilt from them, so each week's rows are exactly the sum
    of its seven days'. The pages read a range's whole weeks from here and only its ragged ends
    from the daily rows (``analytics.domains``): a month is five weeks of rows per domain, not
    thirty days of them."""

    domain = models.CharField(max_length=253)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "sender", "channel_key", "domain"],
                name="domain_week_one_row",
            )
        ]
        indexes = [
            models.Index(
                fields=["tenant", "day"],
                name="domain_week_bounced",
                condition=models.Q(hard__gt=0) | models.Q(soft__gt=0) | models.Q(complained__gt=0),
            ),
        ]

    def __str__(self) -> str:
        return f"week of {self.day} {self.domain} {self.sent} sent"


class TeamRollup(TeamDay, Figures):
    """``Rollup`` without the sender: a team's mail on one day per template, campaign step and
    channel. Bumped by every writer of ``Rollup`` by the same amounts, in the same order of
    tables (``analytics.rollups``), and rebuilt from its rows, so each row is exactly the sum of
    its senders'. The team's pages read it: ``Rollup`` has a row per sender of each of these
    (20 reps: up to 20 times the rows for the same figures)."""

    template_key = models.PositiveBigIntegerField(default=0)
    step_key = models.PositiveBigIntegerField(default=0)

    class Meta:
        # On PostgreSQL the key's index also holds the figures (migration 0010): the pages' sums
        # over a range of days are index-only scans.
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "template_key", "step_key", "channel_key"],
                name="team_rollup_one_row",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.sent} sent"


class TeamWeekRollup(TeamDay, Figures):
    """``TeamRollup`` summed by week: ``day`` is the week's Monday (``analytics.team`` reads a
    range's whole weeks from here, as ``analytics.domains`` does for the domains)."""

    template_key = models.PositiveBigIntegerField(default=0)
    step_key = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "template_key", "step_key", "channel_key"],
                name="team_week_one_row",
            )
        ]

    def __str__(self) -> str:
        return f"week of {self.day} {self.sent} sent"


class TeamReasonRollup(TeamDay):
    """``ReasonRollup`` without the sender: a team's bounces per day, template, channel and
    reason, kept and rebuilt as ``TeamRollup`` is."""

    template_key = models.PositiveBigIntegerField(default=0)
    reason = models.CharField(max_length=24)
    hard = models.BooleanField()
    count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "template_key", "channel_key", "reason", "hard"],
                name="team_reason_one_row",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.reason} {self.count}"


class TeamReasonWeekRollup(TeamDay):
    """``TeamReasonRollup`` summed by week (``day``: the week's Monday)."""

    template_key = models.PositiveBigIntegerField(default=0)
    reason = models.CharField(max_length=24)
    hard = models.BooleanField()
    count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "template_key", "channel_key", "reason", "hard"],
                name="team_reason_week_one_row",
            )
        ]

    def __str__(self) -> str:
        return f"week of {self.day} {self.reason} {self.count}"


class TeamMail(models.Model):
    """What the team's roll-ups are keyed by: one day (or week) of the whole tenant's mail,
    whoever sent it. On PostgreSQL each table's unique key carries the figures too
    (``INCLUDE``, made by migration ``0011``; SQLite has no such index, and Django would then
    drop the key the upserts need): a tenant's range lies in a few contiguous index pages and
    is read by an index-only scan, not one table page per row as the rows lie in the table."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()

    class Meta:
        abstract = True


class TeamDomainRollup(TeamMail, Figures):
    """``DomainRollup`` summed over senders: mail per day, channel and recipient domain, for
    the team's pages (at most a row per channel and domain a day, however many people send)."""

    channel_key = models.PositiveBigIntegerField(default=0)
    domain = models.CharField(max_length=253)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "channel_key", "domain"],
                name="team_domain_one_row",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.domain} {self.sent} sent"


class TeamDomainWeekRollup(TeamMail, Figures):
    """``TeamDomainRollup`` summed by week (``day`` is the Monday), as ``DomainWeekRollup`` is
    ``DomainRollup``: the team's range by domain reads its whole weeks here
    (``analytics.domains``)."""

    channel_key = models.PositiveBigIntegerField(default=0)
    domain = models.CharField(max_length=253)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "channel_key", "domain"],
                name="team_domain_week_one_row",
            )
        ]

    def __str__(self) -> str:
        return f"week of {self.day} {self.domain} {self.sent} sent"


class DomainTemplateRollup(TeamMail, Figures):
    """The team's mail to one recipient domain per day and template: template analytics
    narrowed to a domain (a big domain's 90 days are at most 90 rows a template), keyed by
    domain first so one domain's range is one stretch of the index."""

    domain = models.CharField(max_length=253)
    template_key = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "domain", "day", "template_key"],
                name="domain_template_one_row",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.domain} {self.sent} sent"


class DomainReasonRollup(TeamMail):
    """The team's bounces to one recipient domain per day, template and reason: the reasons of
    template analytics narrowed to a domain."""

    domain = models.CharField(max_length=253)
    template_key = models.PositiveBigIntegerField(default=0)
    reason = models.CharField(max_length=24)
    hard = models.BooleanField()
    count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "domain", "day", "template_key", "reason", "hard"],
                name="domain_reason_one_row",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.domain} {self.reason} {self.count}"

"""The live feed: one row per thing a person should hear about, written in the same transaction
as the change it reports (a bounce recorded, …)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.models import Tenant, TenantOwned, TenantQuerySet


class FeedKind(models.TextChoices):
    BOUNCED = "bounced", "Bounced"
    FAILED = "failed", "Failed"
    SENT = "sent", "Sent"
    THROTTLED = "throttled", "Throttled"
    CHANNEL = "channel", "Channel needs attention"


class Notification(TenantOwned):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=12, choices=FeedKind.choices)
    text = models.CharField(max_length=300)
    link = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["tenant", "user", "-created_at"], name="feed_user_recent"),
            models.Index(fields=["tenant", "-created_at"], name="feed_team_recent"),
        ]

    def __str__(self) -> str:
        return self.text

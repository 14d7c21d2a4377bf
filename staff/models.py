"""What platform staff record: the audit log of their actions and moves off legacy ToutApp.

The MSC server pool they run is ``channels.models.MscServer``."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Tenant


class StaffAuditQuerySet(models.QuerySet["StaffAuditEvent"]):
    def search(self, text: str) -> StaffAuditQuerySet:
        if not text:
            return self
        q = models.Q()
        for field in ("actor_email", "action", "tenant_name", "subject"):
            q |= models.Q(**{f"{field}__icontains": text})
        return self.filter(q)


# What staff did, as stored (searched and kept in the source language), and as people read it.
ACTION_NAMES = {
    "added MSC server": _("added MSC server"),
    "changed MSC server": _("changed MSC server"),
    "enabled MSC server": _("enabled MSC server"),
    "disabled MSC server": _("disabled MSC server"),
    "checked MSC server": _("checked MSC server"),
    "created tenant": _("created tenant"),
    "flagged legacy ToutApp": _("flagged legacy ToutApp"),
    "moved off legacy ToutApp": _("moved off legacy ToutApp"),
    "refused while viewing as tenant": _("refused while viewing as tenant"),
    "started viewing as tenant": _("started viewing as tenant"),
    "stopped viewing as tenant": _("stopped viewing as tenant"),
}


# A change made in the Django admin, stored as "Django admin: <verb> <app>.<model>".
ADMIN_PREFIX = "Django admin: "
ADMIN_VERBS = {
    "added": _("Django admin: added %(model)s"),
    "changed": _("Django admin: changed %(model)s"),
    "deleted": _("Django admin: deleted %(model)s"),
    "touched": _("Django admin: touched %(model)s"),
}


class StaffAuditEvent(models.Model):
    """Who on staff did what, to which tenant, when. Kept when the actor or tenant is gone."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_email = models.EmailField()
    action = models.CharField(max_length=60)
    # Indexed by staff_audit_tenant.
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.SET_NULL, db_index=False
    )
    tenant_name = models.CharField(max_length=200, blank=True)
    subject = models.CharField(max_length=300, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = StaffAuditQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="staff_audit_tenant")]

    def __str__(self) -> str:
        return f"{self.actor_email} {self.action} {self.subject}"

    @property
    def action_text(self) -> str:
        """The action in the reader's language (one not named above as stored): a change in
        the Django admin ("Django admin: changed accounts.tenant") names the model as Django
        does, the same in every language."""
        if self.action in ACTION_NAMES:
            return str(ACTION_NAMES[self.action])
        verb, _space, model = self.action.removeprefix(ADMIN_PREFIX).partition(" ")
        if self.action.startswith(ADMIN_PREFIX) and verb in ADMIN_VERBS:
            return str(ADMIN_VERBS[verb]) % {"model": model}
        return self.action


class LegacyMigration(models.Model):
    """A tenant moved off legacy ToutApp: its MSC channels were disabled and their queued mail
    held; ``told`` counts the users told so far (a task tells them in batches)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="legacy_migrations")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    users = models.PositiveIntegerField(default=0)  # people who had an MSC channel
    told = models.PositiveIntegerField(default=0)
    held = models.PositiveIntegerField(default=0)  # messages held for a new channel
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.tenant} off legacy at {self.started_at}"

    @property
    def percent(self) -> int:
        return 100 if not self.users else round(100 * self.told / self.users)

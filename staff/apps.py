from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from accounts.models import Tenant


class StaffConfig(AppConfig):
    name = "staff"
    verbose_name = _("Staff console")

    def ready(self) -> None:
        from django.contrib.admin.models import LogEntry
        from django.db.models.signals import post_save

        from accounts import home
        from channels import team_page

        post_save.connect(_mirror_admin_change, sender=LogEntry, dispatch_uid="staff-audit-admin")
        team_page.add_panel(_migration_panel)
        home.add_attention(_legacy_attention)
        _audit_labels()


def _audit_labels() -> None:
    """What the staff audit log's stored details read as (``msc_admin.audit``); the pool's
    server fields are the custom SMTP form's, registered by channels."""
    from msc_admin import audit
    from staff.forms import MscServerForm, TenantCreateForm

    audit.register(
        [MscServerForm, TenantCreateForm],
        labels={
            "name": _("Name"),
            "first_admin": _("First admin"),
            "msc_channels_disabled": _("MSC channels retired"),
            "users": _("People told"),
            "messages_held": _("Messages held"),
            "url": _("Address"),
            "view": _("Page"),
            "htmx": _("In-page request"),
            "change": _("Change"),
            "admin_change": _("Change"),
        },
        readers={"admin_change": _admin_change},
    )


def _migration_panel(tenant: Tenant) -> dict[str, object]:
    """The tenant admin's Team settings show who has moved off legacy servers, and who not."""
    from staff.selectors import migration_status  # apps.py is imported before any model

    return {"migration": migration_status(tenant)}


def _legacy_attention(request: Any) -> Any:
    from staff.home import home_attention  # apps.py is imported before any model

    return home_attention(request)


def _mirror_admin_change(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """A change made in the Django admin is a staff action too: it joins the staff audit log."""
    if not created or instance.user is None:
        return
    from staff.models import StaffAuditEvent

    verb = {1: "added", 2: "changed", 3: "deleted"}.get(instance.action_flag, "touched")
    kind = instance.content_type
    # The model by its technical name ("accounts.tenant"), the same in every language; the
    # change as the admin recorded it (its JSON), worded when read, in the reader's language.
    model = f"{kind.app_label}.{kind.model}" if kind else "object"
    StaffAuditEvent.objects.create(
        actor=instance.user,
        actor_email=instance.user.email,
        action=f"Django admin: {verb} {model}"[:60],
        subject=instance.object_repr[:300],
        details={"admin_change": instance.change_message} if instance.change_message else {},
    )


def _admin_change(value: object) -> str:
    """A Django admin change message (stored as the admin keeps it) in the reader's words."""
    from django.contrib.admin.models import LogEntry

    return str(LogEntry(change_message=str(value)).get_change_message())

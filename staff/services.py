"""Staff actions. Each one writes its audit row in the same transaction as the change."""

from __future__ import annotations

import zlib
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant, User
from channels.kinds import SmtpConfig
from channels.services import SECRET_CHANGED
from channels.transports import smtp
from msc_admin.crypto import SecretUnavailable
from staff.models import MscServer, StaffAuditEvent


def audit(
    *,
    actor: User,
    action: str,
    tenant: Tenant | None = None,
    subject: str = "",
    details: dict[str, Any] | None = None,
) -> StaffAuditEvent:
    return StaffAuditEvent.objects.create(
        actor=actor,
        actor_email=actor.email,
        action=action,
        tenant=tenant,
        tenant_name=tenant.name if tenant else "",
        subject=subject[:300],
        details=details or {},
    )


_SERVER_FIELDS = ("name", "host", "port", "security", "auth_method", "username")


@transaction.atomic
def server_save(
    *,
    actor: User,
    server: MscServer | None,
    name: str,
    config: SmtpConfig,
    password: str | None,
) -> MscServer:
    """Create or change a pool server; a blank password keeps the stored one."""
    created = server is None
    server = server or MscServer()
    before = {f: getattr(server, f) for f in _SERVER_FIELDS}
    server.name = name
    server.host, server.port, server.security = config.host, config.port, config.security
    server.auth_method, server.username = config.auth_method, config.username
    if password:
        server.set_password(password)
    server.save()
    after = {f: getattr(server, f) for f in _SERVER_FIELDS}
    changes: dict[str, Any] = {
        k: {"from": before[k], "to": v} for k, v in after.items() if before[k] != v
    }
    if password:
        changes["password"] = SECRET_CHANGED  # never the value
    audit(
        actor=actor,
        action="added MSC server" if created else "changed MSC server",
        subject=str(server),
        details=changes,
    )
    return server


@transaction.atomic
def server_set_enabled(*, actor: User, server: MscServer, enabled: bool) -> None:
    MscServer.objects.filter(pk=server.pk).update(enabled=enabled)
    action = "enabled MSC server" if enabled else "disabled MSC server"
    audit(actor=actor, action=action, subject=str(server))


def server_check(*, actor: User, server: MscServer) -> smtp.ConnectionReport:
    """A real SMTP handshake (TLS and AUTH, no mail) with the server; the result is kept."""
    try:
        report = smtp.check_connection(server.config, server.password())
    except SecretUnavailable:
        report = smtp.ConnectionReport(
            ok=False, summary="The stored password cannot be decrypted. Enter it again."
        )
    with transaction.atomic():
        MscServer.objects.filter(pk=server.pk).update(
            last_check_at=timezone.now(),
            last_check_ok=report.ok,
            last_check_message=report.summary[:500],
        )
        audit(
            actor=actor,
            action="checked MSC server",
            subject=str(server),
            details={"ok": report.ok, "result": report.summary[:200]},
        )
    return report


def pick_server(recipient: str) -> MscServer | None:
    """The pool server for one message: an enabled one whose last check did not fail, spread
    by recipient; an enabled one not yet checked or failing only when no other is left."""
    enabled = list(MscServer.objects.filter(enabled=True).order_by("pk"))
    healthy = [s for s in enabled if s.last_check_ok is not False] or enabled
    if not healthy:
        return None
    return healthy[zlib.crc32(recipient.lower().encode()) % len(healthy)]


@transaction.atomic
def tenant_create(
    *, actor: User, name: str, slug: str, legacy_toutapp: bool, admin_email: str
) -> Tenant:
    """A new tenant and its first admin, who is emailed an invitation after commit."""
    from accounts.models import Role
    from accounts.services import membership_invite

    tenant = Tenant.objects.create(name=name, slug=slug, legacy_toutapp=legacy_toutapp)
    membership_invite(tenant=tenant, email=admin_email, role=Role.ADMIN, invited_by=actor)
    audit(
        actor=actor,
        action="created tenant",
        tenant=tenant,
        subject=name,
        details={"slug": slug, "legacy_toutapp": legacy_toutapp, "first_admin": admin_email},
    )
    return tenant

"""The legacy MSC server pool: the servers' writes, their check, and the choice of a server for
one message. The staff console runs the pool through these and records its own audit entries
in the same transaction (``staff.services``)."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop
from django.views.decorators.debug import sensitive_variables

from channels.kinds import SmtpConfig
from channels.models import MscServer
from channels.services import SECRET_CHANGED
from channels.transports import smtp
from msc_admin.crypto import SecretUnavailable
from msc_admin.stored import stored

_SERVER_FIELDS = ("name", "host", "port", "security", "auth_method", "username")


@dataclass(frozen=True)
class ServerSaved:
    server: MscServer
    created: bool
    changes: dict[str, Any]  # field: {"from", "to"}; a new password as "changed", never its value


@sensitive_variables("password")
def msc_server_save(
    *, server: MscServer | None, name: str, config: SmtpConfig, password: str | None
) -> ServerSaved:
    """Create or change a pool server; a blank password keeps the stored one."""
    with transaction.atomic():  # not @atomic: its frame would show the password to reports
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
        return ServerSaved(server, created, changes)


@transaction.atomic
def msc_server_set_enabled(*, server: MscServer, enabled: bool) -> None:
    MscServer.objects.filter(pk=server.pk).update(enabled=enabled)


def msc_server_check(
    *,
    server: MscServer,
    on_checked: Callable[[smtp.ConnectionReport], object] | None = None,
) -> smtp.ConnectionReport:
    """A real SMTP handshake (TLS and AUTH, no mail) with the server; the result is kept on its
    row. ``on_checked`` runs in the transaction that keeps it (the caller's own record of the
    check commits with it); the handshake itself runs outside any transaction."""
    try:
        report = smtp.check_connection(server.config, server.password())
    except SecretUnavailable:
        report = smtp.ConnectionReport(
            ok=False,
            summary=gettext_noop("The stored password cannot be decrypted. Enter it again."),
        )
    with transaction.atomic():
        MscServer.objects.filter(pk=server.pk).update(
            last_check_at=timezone.now(),
            last_check_ok=report.ok,
            last_check_message=stored(report.summary),  # read in the reader's language
        )
        if on_checked is not None:
            on_checked(report)
    return report


def pick_server(recipient: str) -> MscServer | None:
    """The pool server for one message: an enabled one whose last check did not fail, spread
    by recipient; an enabled one not yet checked or failing only when no other is left."""
    enabled = list(MscServer.objects.filter(enabled=True).order_by("pk"))
    healthy = [s for s in enabled if s.last_check_ok is not False] or enabled
    if not healthy:
        return None
    return healthy[zlib.crc32(recipient.lower().encode()) % len(healthy)]

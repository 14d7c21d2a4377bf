"""Staff actions. Each one writes its audit row in the same transaction as the change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop, ngettext
from django.views.decorators.debug import sensitive_variables

from accounts.language import in_language_of
from accounts.models import Tenant, User
from channels import pool
from channels.kinds import SmtpConfig
from channels.models import MscServer
from channels.transports.smtp import ConnectionReport
from msc_admin import enqueue
from msc_admin.stored import stored
from staff.models import LegacyMigration, StaffAuditEvent


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


@sensitive_variables("password")
def server_save(
    *,
    actor: User,
    server: MscServer | None,
    name: str,
    config: SmtpConfig,
    password: str | None,
) -> MscServer:
    """Create or change a pool server (``channels.pool``); a blank password keeps the stored
    one."""
    with transaction.atomic():  # not @atomic: its frame would show the password to reports
        saved = pool.msc_server_save(server=server, name=name, config=config, password=password)
        audit(
            actor=actor,
            action="added MSC server" if saved.created else "changed MSC server",
            subject=str(saved.server),
            details=saved.changes,
        )
        return saved.server


@transaction.atomic
def server_set_enabled(*, actor: User, server: MscServer, enabled: bool) -> None:
    pool.msc_server_set_enabled(server=server, enabled=enabled)
    action = "enabled MSC server" if enabled else "disabled MSC server"
    audit(actor=actor, action=action, subject=str(server))


def server_check(*, actor: User, server: MscServer) -> ConnectionReport:
    """A real SMTP handshake with the server; the result is kept, audited with it."""

    def checked(report: ConnectionReport) -> None:
        audit(
            actor=actor,
            action="checked MSC server",
            subject=str(server),
            details={"ok": report.ok, "result": stored(report.summary, 200)},
        )

    return pool.msc_server_check(server=server, on_checked=checked)


@transaction.atomic
def tenant_create(
    *, actor: User, name: str, slug: str, legacy_toutapp: bool, admin_email: str
) -> Tenant:
    """A new tenant and its first admin, who is emailed an invitation after commit."""
    from accounts import services as account_services
    from accounts.models import Role

    tenant = account_services.tenant_create(name=name, slug=slug, legacy_toutapp=legacy_toutapp)
    account_services.membership_invite(
        tenant=tenant, email=admin_email, role=Role.ADMIN, invited_by=actor
    )
    audit(
        actor=actor,
        action="created tenant",
        tenant=tenant,
        subject=name,
        details={"slug": slug, "legacy_toutapp": legacy_toutapp, "first_admin": admin_email},
    )
    return tenant


# What the people of a tenant moved off legacy are told. From the move on the tenant is
# modern, and a modern tenant never reads "MSC": these say "the shared legacy servers".
# RETIRED is stored as the channels' status message, which the whole team reads: stored as its
# message id (``msc_admin.stored``), each reads it in their own language.
RETIRED = gettext_noop("Retired when your team moved off legacy ToutApp.")
TOLD_SUBJECT = gettext_lazy("Your team no longer sends through the shared legacy servers")
TOLD = gettext_lazy("Your team no longer sends through the shared legacy servers.")


@dataclass(frozen=True)
class Told:
    """What one person is told of the move, as their situation is: the channel their mail
    goes through now, or what they can do to get one (``channels.routing``), in their
    language."""

    subject: str
    text: str
    link: str


def _told(user: User, waiting: int) -> Told:
    from django.urls import reverse

    from channels.models import Identity
    from channels.routing import Source, route

    identity = Identity.objects.filter(user=user, is_default=True).first()
    with in_language_of(user):
        where = route(user=user, identity=identity, source=Source.WEB)
        subject = str(TOLD_SUBJECT)
        if where.can_send and where.channel is not None:
            said = [
                str(TOLD),
                _("Your mail now goes through %(channel)s.") % {"channel": where.channel.label},
            ]
            if waiting:
                said.append(
                    ngettext(
                        "%(n)d message waited for the change: send it from your Outbox.",
                        "%(n)d messages waited for the change: send them from your Outbox.",
                        waiting,
                    )
                    % {"n": waiting}
                )
            return Told(subject, " ".join(said), reverse("sending:outbox"))
        said = [str(TOLD), str(where.problem)]
        if waiting:
            said.append(
                ngettext(
                    "%(n)d of your messages waits for it.",
                    "%(n)d of your messages wait for it.",
                    waiting,
                )
                % {"n": waiting}
            )
        return Told(subject, " ".join(said), reverse("channels:overview"))


@transaction.atomic
def tenant_flag_legacy(*, actor: User, tenant: Tenant) -> None:
    from accounts import services as account_services

    account_services.tenant_set_legacy(tenant=tenant, legacy_toutapp=True)
    audit(actor=actor, action="flagged legacy ToutApp", tenant=tenant, subject=tenant.name)


@transaction.atomic
def tenant_unflag_legacy(*, actor: User, tenant: Tenant) -> LegacyMigration:
    """Move a tenant off legacy: its MSC channels are disabled (nothing more goes through
    them), identities that used them lose the choice, their queued mail is held (not lost)
    until each user picks a channel, and a task tells the users, in batches, with progress."""
    from accounts import services as account_services
    from channels import kinds
    from channels import services as channel_services
    from channels.models import Channel
    from sending import services as sending_services
    from staff import tasks

    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if not tenant.legacy_toutapp:
        raise ValidationError(_("%(team)s is not a legacy ToutApp tenant.") % {"team": tenant.name})
    account_services.tenant_set_legacy(tenant=tenant, legacy_toutapp=False)
    msc = Channel.objects.filter(tenant=tenant, kind__in=kinds.values(legacy_only=True))
    ids = list(msc.values_list("pk", flat=True))
    users = msc.exclude(owner__isnull=True).values("owner").distinct().count()
    channel_services.channels_retire(channel_ids=ids, message=RETIRED, actor=actor)
    held = sending_services.messages_hold_until_rerouted(channel_ids=ids)
    _retire_msc_wording(tenant)
    migration = LegacyMigration.objects.create(
        tenant=tenant, started_by=actor, users=users, held=held
    )
    audit(
        actor=actor,
        action="moved off legacy ToutApp",
        tenant=tenant,
        subject=tenant.name,
        details={"msc_channels_disabled": len(ids), "users": users, "messages_held": held},
    )
    enqueue.after_commit(tasks.tell_migrated_users, migration.pk)
    return migration


def _retire_msc_wording(tenant: Tenant) -> None:
    """What the tenant's pages show from earlier texts (why a message failed, feed entries)
    mentions MSC servers: reword it as the now modern tenant reads it. The staff audit log, and
    the tenant's channel audit log as stored, keep the facts."""
    from django.db.models import F, Value
    from django.db.models.functions import Left, Replace

    from analytics import feed
    from channels.kinds import RETIRED_WORDING
    from sending import services as sending_services

    def reworded(field: str, max_length: int) -> Left:
        text: Any = F(field)
        for old, new in RETIRED_WORDING:
            text = Replace(text, Value(old), Value(new))
        return Left(text, max_length)  # the new words are longer

    sending_services.messages_reword(tenant=tenant, containing="MSC server", reworded=reworded)
    feed.reword(tenant.pk, containing="MSC server", reworded=reworded)


TELL_BATCH = 50


def tell_migrated_users(migration_id: int) -> None:
    """Tell each user who had an MSC channel (feed entry and email), a batch per transaction,
    counting progress; a rerun after a crash carries on from ``told``."""
    from django.core.mail import send_mail

    from analytics import feed
    from analytics.models import FeedKind
    from channels import kinds
    from channels.models import Channel
    from sending.models import Hold, Message

    migration = LegacyMigration.objects.select_related("tenant").get(pk=migration_id)
    owner_ids = list(
        Channel.objects.filter(tenant=migration.tenant, kind__in=kinds.values(legacy_only=True))
        .exclude(owner__isnull=True)
        .order_by("owner_id")
        .values_list("owner_id", flat=True)
        .distinct()
    )
    base_url = settings.MSC_BASE_URL.rstrip("/")
    for start in range(migration.told, len(owner_ids), TELL_BATCH):
        ids = owner_ids[start : start + TELL_BATCH]
        batch = User.objects.select_related("membership").in_bulk(ids)
        waiting = dict(
            Message.objects.filter(sender_id__in=batch, hold=Hold.CHANNEL)
            .values_list("sender_id")
            .annotate(n=models.Count("pk"))
            .order_by()
        )
        told = {pk: _told(user, waiting.get(pk, 0)) for pk, user in sorted(batch.items())}
        # Email first, then the feed entries and the count in one transaction: a crash in
        # between repeats an email on the rerun, never loses one, and never doubles an entry.
        for user_id, what in told.items():
            send_mail(
                subject=what.subject,
                message=f"{what.text}\n\n{base_url}{what.link}\n",
                from_email=None,
                recipient_list=[batch[user_id].email],
            )
        with transaction.atomic():
            entries = [
                (user_id, FeedKind.CHANNEL, what.text, what.link) for user_id, what in told.items()
            ]
            feed.notify(migration.tenant_id, entries)
            LegacyMigration.objects.filter(pk=migration.pk).update(told=start + len(ids))
    LegacyMigration.objects.filter(pk=migration.pk).update(
        told=len(owner_ids), finished_at=timezone.now()
    )

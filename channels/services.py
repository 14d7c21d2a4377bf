"""Writes to channels, identities, blocked domains and team sending settings.

Every change that touches a channel records a ``ChannelAuditEvent`` naming the fields that
changed; secret fields are recorded as "changed", never with their value.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMessage
from django.core.signing import BadSignature, SignatureExpired, TimestampSigner
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.debug import sensitive_variables

from accounts.models import Tenant, User
from analytics import feed
from channels.domaincheck.services import sending_domains_check_later
from channels.kinds import ChannelKind, ExchangeOnPremConfig, SendAsUnavailable, SmtpConfig
from channels.kinds.config import Reading
from channels.models import (
    BlockedDomain,
    Channel,
    ChannelAuditEvent,
    ChannelStatus,
    DomainCap,
    Identity,
    TeamSendingSettings,
)
from channels.signals import domain_caps_changed, limits_changed
from channels.transports import smtp
from msc_admin.crypto import SecretUnavailable
from msc_admin.stored import Sentence, sentence, stored

IDENTITY_SALT = "channels.identity-verification"
SECRET_CHANGED = "changed (value not recorded)"  # noqa: S105 - a label, not a secret
IDENTITY_MAX_AGE = 3 * 24 * 3600


def stored_label(thing: Channel | DomainCap) -> str:
    """``thing.label`` in English. The words kept in the audit log and the live feed are English
    whoever's request writes them, like everything the workers store: stored text is never
    translated later, and a move off legacy rewords English (``kinds.RETIRED_WORDING``)."""
    with translation.override(None):
        return str(thing.label)


@contextmanager
def in_language_of(user: User | None) -> Iterator[None]:
    """An email to ``user`` in their language: their own choice, else the language this request
    is answered in (their browser's). The project-wide helper will replace this one."""
    with translation.override(getattr(user, "language", "") or translation.get_language()):
        yield


def audit(
    *,
    tenant: Tenant,
    actor: User | None,
    action: str,
    channel: Channel | None = None,
    subject: str = "",
    changes: dict[str, Any] | None = None,
) -> ChannelAuditEvent:
    return ChannelAuditEvent.objects.create(
        tenant=tenant,
        actor=actor,
        channel=channel,
        # A sentence (``msc_admin.stored``) is kept as one and read in the reader's language.
        subject=stored(subject, 300) if subject else (stored_label(channel) if channel else ""),
        action=action,
        changes=changes or {},
    )


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: {"from": before.get(k), "to": v} for k, v in after.items() if before.get(k) != v}


@transaction.atomic
def identities_take_first_channel(channel: Channel) -> list[str]:
    """A user's first working channel goes to all their identities without one that it may
    send as (a retired MSC channel does not count); later ones are picked per identity.
    Returns the addresses of the identities it could not take (a mailbox sends only as its
    own addresses), which stay without a channel."""
    if channel.owner_id is None:
        return []
    others = (
        Channel.objects.filter(owner_id=channel.owner_id)
        .exclude(pk=channel.pk)
        .exclude(status=ChannelStatus.DISABLED)
    )
    if others.exists():
        return []
    unrouted = Identity.objects.filter(user_id=channel.owner_id, channel__isnull=True)
    taken = [i.pk for i in unrouted if channel.may_send_as(i.email)]
    Identity.objects.filter(pk__in=taken).update(channel=channel)
    return list(unrouted.exclude(pk__in=taken).values_list("email", flat=True))


def first_channel_for(user: User, email: str) -> Channel | None:
    """The user's oldest channel that may send as ``email``, for a new identity."""
    channels = Channel.objects.filter(owner=user).order_by("created_at")
    return next((c for c in channels if c.may_send_as(email)), None)


def team_channel_for(tenant: Tenant, email: str) -> Channel | None:
    """The team's channel for all members, when it may send as ``email``."""
    channels = Channel.objects.filter(
        tenant=tenant, owner__isnull=True, use_for_all_members=True
    ).exclude(status=ChannelStatus.DISABLED)
    return next((c for c in channels.order_by("created_at") if c.may_send_as(email)), None)


def _save_with_audit(
    channel: Channel, *, actor: User, created: bool, before: dict[str, Any], extra: dict[str, Any]
) -> Channel:
    channel.save()
    changes = {**_diff(before, channel.config), **extra}
    audit(
        tenant=channel.tenant,
        actor=actor,
        channel=channel,
        action="created" if created else "updated",
        changes=changes,
    )
    if created:
        identities_take_first_channel(channel)
    elif changes:
        limits_changed.send(sender=Channel, tenant_id=channel.tenant_id, channel_ids=[channel.pk])
    return channel


@sensitive_variables("password")
def channel_save_smtp(
    *,
    tenant: Tenant,
    actor: User,
    owner: User | None,
    config: SmtpConfig,
    password: str | None,
    use_for_all_members: bool = False,
) -> Channel:
    """Create or update the custom SMTP channel of ``owner`` (or the team's when None).

    ``password`` None keeps the stored one (the form field is write-only).
    """
    with transaction.atomic():  # not @atomic: its frame would show the password to reports
        qs = Channel.objects.for_tenant(tenant).select_for_update()
        channel = (
            (qs.team() if owner is None else qs.personal_for(owner))
            .filter(kind=ChannelKind.CUSTOM_SMTP)
            .first()
        )
        if owner is None:
            # The team has one team channel; replacing its kind is a new channel.
            Channel.objects.for_tenant(tenant).team().exclude(kind=ChannelKind.CUSTOM_SMTP).delete()
        created = channel is None
        if channel is None:
            channel = Channel(tenant=tenant, owner=owner, kind=ChannelKind.CUSTOM_SMTP)
        before = dict(channel.config)
        channel.config = config.to_dict()
        extra: dict[str, Any] = {}
        if owner is None and channel.use_for_all_members != use_for_all_members:
            extra["use_for_all_members"] = {
                "from": channel.use_for_all_members,
                "to": use_for_all_members,
            }
        channel.use_for_all_members = use_for_all_members if owner is None else False
        if password:
            channel.set_secret({"password": password})
            extra["password"] = SECRET_CHANGED
        if created or password or SmtpConfig.from_dict(before).connection() != config.connection():
            # New settings have not been tested yet; a repaired password clears "needs attention".
            # (Sending limits alone change nothing of the connection.)
            channel.status, channel.status_message = ChannelStatus.ACTIVE, ""
            channel.last_test_at, channel.last_test_ok, channel.last_test_message = None, None, ""
        channel = _save_with_audit(
            channel, actor=actor, created=created, before=before, extra=extra
        )
        sending_domains_check_later(channel=channel)
        return channel


@sensitive_variables("password")
def channel_save_exchange_onprem(
    *, tenant: Tenant, actor: User, owner: User, config: ExchangeOnPremConfig, password: str | None
) -> Channel:
    with transaction.atomic():  # not @atomic: its frame would show the password to reports
        channel = (
            Channel.objects.for_tenant(tenant)
            .select_for_update()
            .personal_for(owner)
            .filter(kind=ChannelKind.EXCHANGE_ONPREM)
            .first()
        )
        created = channel is None
        if channel is None:
            channel = Channel(tenant=tenant, owner=owner, kind=ChannelKind.EXCHANGE_ONPREM)
        before = dict(channel.config)
        channel.config = config.to_dict()
        channel.account_email = config.email
        extra: dict[str, Any] = {}
        if password:
            channel.set_secret({"password": password})
            extra["password"] = SECRET_CHANGED
            channel.status, channel.status_message = ChannelStatus.ACTIVE, ""
        return _save_with_audit(channel, actor=actor, created=created, before=before, extra=extra)


@transaction.atomic
def channel_select_legacy(*, tenant: Tenant, actor: User, owner: User) -> Channel:
    """Use the shared MSC servers. Only legacy ToutApp tenants may; others are refused.

    Choosing them is choosing where the owner's web-app mail goes: every identity of the owner
    sends through them from now on (not only when it is their first channel), so the routing
    table says what the confirmation says. A channel retired by an earlier move off legacy is
    brought back."""
    if not tenant.legacy_toutapp:
        raise PermissionDenied("MSC servers are not available to your team.")
    channel, created = Channel.objects.select_for_update().get_or_create(
        tenant=tenant, owner=owner, kind=ChannelKind.MSC_LEGACY
    )
    if created:
        audit(tenant=tenant, actor=actor, channel=channel, action="created")
    elif channel.status == ChannelStatus.DISABLED:
        channel.status, channel.status_message = ChannelStatus.ACTIVE, ""
        channel.save(update_fields=["status", "status_message", "updated_at"])
        audit(tenant=tenant, actor=actor, channel=channel, action="enabled again")
    identities = Identity.objects.for_tenant(tenant).filter(user=owner)
    moved = list(identities.exclude(channel=channel).values_list("email", flat=True))
    if moved:
        identities.update(channel=channel)
        audit(
            tenant=tenant,
            actor=actor,
            channel=channel,
            subject=", ".join(moved)[:300],
            action="identity channel set",
            changes={"channel": stored_label(channel)},
        )
    return channel


@transaction.atomic
def channel_connect_oauth(
    *,
    tenant: Tenant,
    owner: User,
    kind: str,
    provider: str,
    uid: str,
    email: str,
    tokens: dict[str, Any],
    expires_at: Any,
    scopes: str,
) -> Channel:
    """Store (or refresh) an Email Connection made through the provider's OAuth consent."""
    channel = (
        Channel.objects.for_tenant(tenant)
        .select_for_update()
        .personal_for(owner)
        .filter(kind=kind)
        .first()
    )
    created = channel is None
    if channel is None:
        channel = Channel(tenant=tenant, owner=owner, kind=kind)
    before = dict(channel.config)
    # What the owner or an admin set on the mailbox (a trial account, IMAP reading) outlives a
    # reconnect.
    kept = {k: before[k] for k in ("trial", "reading") if before.get(k)}
    channel.config = {"provider": provider, "uid": uid, "scopes": scopes, **kept}
    channel.account_email = email
    previous = channel.read_secret() if channel.secret else {}
    if not tokens.get("refresh_token") and previous.get("refresh_token"):
        # Providers send a refresh token only on first consent; keep the one we have.
        tokens = {**tokens, "refresh_token": previous["refresh_token"]}
    channel.set_secret(tokens)
    channel.token_expires_at = expires_at
    channel.status, channel.status_message = ChannelStatus.ACTIVE, ""
    channel = _save_with_audit(
        channel, actor=owner, created=created, before=before, extra={"tokens": SECRET_CHANGED}
    )
    TeamSendingSettings.objects.get_or_create(tenant=tenant)
    return channel


@transaction.atomic
def channel_set_trial(*, channel: Channel, actor: User, trial: bool) -> Channel:
    """Mark a mailbox as a trial account (its provider's lower limits apply) or not; audited
    when it changes. Only kinds with trial accounts (``kind.trial_accounts``) have the flag."""
    if not channel.kind_spec.trial_accounts:
        raise ValidationError(
            _("%(kind)s has no trial accounts.") % {"kind": channel.kind_spec.label}
        )
    locked = Channel.objects.select_for_update().get(pk=channel.pk)
    was = bool(locked.config.get("trial"))
    if was != trial:
        locked.config = {**locked.config, "trial": trial}
        locked.save(update_fields=["config", "updated_at"])
        audit(
            tenant=locked.tenant,
            actor=actor,
            channel=locked,
            action="updated",
            changes={"trial": {"from": was, "to": trial}},
        )
        limits_changed.send(sender=Channel, tenant_id=locked.tenant_id, channel_ids=[locked.pk])
    return locked


@transaction.atomic
def channel_set_reading(*, channel: Channel, actor: User, reading: str) -> Channel:
    """Read the mailbox for bounces through the provider's API or by IMAP (``Reading``);
    audited when it changes. Only kinds whose inbox is read through an API have the choice."""
    if not channel.kind_spec.reading_api or reading not in Reading.values:
        raise ValidationError(
            _("%(kind)s has no choice of reading path.") % {"kind": channel.kind_spec.label}
        )
    locked = Channel.objects.select_for_update().get(pk=channel.pk)
    was = locked.oauth.reading or "default"
    if was != reading:
        locked.config = {**locked.config, "reading": reading}
        locked.save(update_fields=["config", "updated_at"])
        audit(
            tenant=locked.tenant,
            actor=actor,
            channel=locked,
            action="updated",
            changes={"reading": {"from": was, "to": reading}},
        )
    return locked


@dataclass(frozen=True)
class SendAsRefresh:
    """What ``channel_refresh_send_as`` found: the addresses, or why they could not be read
    (the old list is kept)."""

    addresses: list[str]
    problem: str = ""


def channel_refresh_send_as(*, channel: Channel, actor: User | None) -> SendAsRefresh:
    """Ask the provider which addresses the mailbox may send as and store them on the
    channel. When it cannot be asked, the list last fetched is kept and the channel says why.
    The provider is asked outside any transaction (no row is locked while it answers)."""
    if not channel.kind_spec.restricts_senders:
        raise ValidationError(
            _("%(kind)s may send as any of your identities.") % {"kind": channel.kind_spec.label}
        )
    try:
        addresses = channel.kind_spec.send_as(channel)
    except SendAsUnavailable as unavailable:
        problem = (
            f"Could not refresh the send-as addresses: {unavailable} "
            "The addresses last found are still used."
        )
        channel_store_send_as(channel=channel, actor=actor, addresses=None, problem=problem)
        return SendAsRefresh(channel.sendable_addresses, problem)
    channel_store_send_as(channel=channel, actor=actor, addresses=addresses, problem="")
    return SendAsRefresh(channel.sendable_addresses)


@transaction.atomic
def channel_store_send_as(
    *, channel: Channel, actor: User | None, addresses: list[str] | None, problem: str
) -> Channel:
    """Store what a send-as fetch found (``addresses`` None: nothing, keep the old list) and
    why it failed (``problem``); a changed list is audited."""
    locked = Channel.objects.select_for_update().get(pk=channel.pk)
    fields = ["send_as_problem", "updated_at"]
    locked.send_as_problem = problem[:300]
    before = list(locked.send_as)
    if addresses is not None:
        own = locked.account_email.lower()
        locked.send_as = sorted({a.lower() for a in addresses} - {own})
        locked.send_as_fetched_at = timezone.now()
        fields += ["send_as", "send_as_fetched_at"]
    locked.save(update_fields=fields)
    if locked.send_as != before:
        audit(
            tenant=locked.tenant,
            actor=actor,
            channel=locked,
            action="send-as addresses refreshed",
            changes={"send_as": {"from": before, "to": locked.send_as}},
        )
    channel.send_as, channel.send_as_problem = locked.send_as, locked.send_as_problem
    channel.send_as_fetched_at = locked.send_as_fetched_at
    return locked


@transaction.atomic
def channel_mark_needs_attention(*, channel: Channel, message: str) -> None:
    """Mark the channel; its owner (or, for the team channel, the admins) hear of it once,
    when it changes, not at every failed try."""
    mine = Channel.objects.filter(pk=channel.pk)
    # Read later in each reader's language: a sentence is kept as its id and values.
    said = stored(message, 500)
    changed = mine.exclude(status=ChannelStatus.NEEDS_ATTENTION).update(
        status=ChannelStatus.NEEDS_ATTENTION, status_message=said
    )
    if not changed:
        mine.update(status_message=said)
    else:
        link = reverse("channels:team" if channel.is_team else "channels:overview")
        # The reason is on the page the entry links to (with it, a sentence may not fit).
        text = sentence(gettext_noop("%(channel)s needs attention."), channel=channel.label)
        feed.notify_channel(channel, text, link)
    audit(
        tenant=channel.tenant,
        actor=None,
        channel=channel,
        action="needs attention",
        changes={"reason": stored(message, 200)},
    )


@transaction.atomic
def channel_pause(*, channel: Channel, message: str, why: str, changes: dict[str, Any]) -> bool:
    """Pause an active channel (nothing goes through it until it is resumed), saying why on the
    channel; audited as ``paused (<why>)``. Returns whether it was active."""
    paused = Channel.objects.filter(pk=channel.pk, status=ChannelStatus.ACTIVE).update(
        status=ChannelStatus.PAUSED, status_message=stored(message, 500)
    )
    if paused:
        audit(
            tenant=channel.tenant,
            actor=None,
            channel=channel,
            action=f"paused ({why})",
            changes=changes,
        )
    return bool(paused)


@transaction.atomic
def channel_resume(*, channel: Channel, actor: User, why: str, changes: dict[str, Any]) -> bool:
    """Resume a paused channel; audited as ``resumed after <why>`` (also when it was no longer
    paused, as the admin did resume it). Returns whether it was paused."""
    resumed = Channel.objects.filter(pk=channel.pk, status=ChannelStatus.PAUSED).update(
        status=ChannelStatus.ACTIVE, status_message=""
    )
    audit(
        tenant=channel.tenant,
        actor=actor,
        channel=channel,
        action=f"resumed after {why}",
        changes=changes,
    )
    return bool(resumed)


@transaction.atomic
def channel_back_off(*, channel: Channel, until: Any, level: int, reason: str) -> None:
    """The provider pushed back (a rate or a quota): nothing goes through the channel before
    ``until``. ``level`` counts the push-backs in a row (the wait doubles with each), ``reason``
    says why in the Outbox's words; not audited, as it is the provider's doing and comes and
    goes by itself."""
    Channel.objects.filter(pk=channel.pk).update(
        backoff_until=until, backoff_level=level, backoff_reason=stored(reason, 300)
    )


@transaction.atomic
def channel_back_off_end(*, channel: Channel) -> None:
    """A send went through: the next push-back starts again from the shortest wait."""
    Channel.objects.filter(pk=channel.pk).update(backoff_level=0, backoff_reason="")


@transaction.atomic
def channels_retire(*, channel_ids: list[int], message: str, actor: User | None = None) -> int:
    """Retire these channels: disabled for good (nothing more goes through them), saying why,
    and no identity sends through them any more; each is audited as retired by ``actor``.
    ``message`` is a sentence, or a message id marked with ``gettext_noop``. Returns how many."""
    said = message if isinstance(message, Sentence) else sentence(message)
    channels = list(
        Channel.objects.filter(pk__in=channel_ids).select_related("tenant", "owner").order_by("pk")
    )
    retired = Channel.objects.filter(pk__in=channel_ids).update(
        status=ChannelStatus.DISABLED, status_message=stored(said, 500)
    )
    Identity.objects.filter(channel_id__in=channel_ids).update(channel=None)
    for channel in channels:
        channel.status = ChannelStatus.DISABLED  # its label as it reads from now on
        whose = f" of {channel.owner.email}" if channel.owner else ""
        audit(
            tenant=channel.tenant,
            actor=actor,
            channel=channel,
            subject=f"{stored_label(channel)}{whose}",
            action="retired",
            changes={"reason": stored(said, 200)},
        )
    return retired


@transaction.atomic
def channel_delete(*, channel: Channel, actor: User) -> None:
    audit(
        tenant=channel.tenant,
        actor=actor,
        channel=None,
        subject=stored_label(channel),
        action="removed",
    )
    channel.delete()


def _record_test(channel: Channel, report: smtp.ConnectionReport) -> None:
    """A test's result is the channel's last test (the home page and the channel's card say
    it); a refused sign-in marks the channel, a passed test clears the mark."""
    Channel.objects.filter(pk=channel.pk).update(
        last_test_at=timezone.now(),
        last_test_ok=report.ok,
        last_test_message=stored(report.summary),  # read in the reader's language
    )
    if not report.ok and smtp.is_auth_failure(report.summary):
        channel_mark_needs_attention(channel=channel, message=report.summary)
    elif report.ok and channel.needs_attention:
        Channel.objects.filter(pk=channel.pk).update(status=ChannelStatus.ACTIVE, status_message="")


def channel_check_connection(*, channel: Channel, actor: User) -> smtp.ConnectionReport:
    """The real handshake, TLS and AUTH against the channel's server; the result is stored."""
    kind = channel.kind_spec
    if not kind.connection_test:
        raise ValidationError(_("This channel has no connection test here."))
    try:
        password = channel.read_secret().get("password", "")
    except SecretUnavailable:
        report = smtp.ConnectionReport(
            ok=False,
            summary=gettext_noop(
                "The stored password cannot be decrypted. Enter the password again and save."
            ),
        )
    else:
        report = kind.check_connection(channel, password)
    _record_test(channel, report)
    audit(
        tenant=channel.tenant,
        actor=actor,
        channel=channel,
        action="tested",
        changes={"ok": report.ok, "result": stored(report.summary, 200)},
    )
    return report


def channel_send_test_email(*, channel: Channel, actor: User, to: str) -> smtp.ConnectionReport:
    """Send one short test message through the channel to an address the user typed. It is
    the channel's last test too (kept as ``channel_check_connection`` keeps a handshake's)."""
    report = _send_test_email(channel=channel, actor=actor, to=to)
    _record_test(channel, report)
    if report.ok:
        audit(
            tenant=channel.tenant,
            actor=actor,
            channel=channel,
            action="sent test email",
            changes={"to": to},
        )
    return report


def _send_test_email(*, channel: Channel, actor: User, to: str) -> smtp.ConnectionReport:
    steps: list[str] = []
    config = channel.smtp
    sender = f"{actor.email}" if not config.sending_domain else f"test@{config.sending_domain}"
    with in_language_of(actor):  # to an address the actor typed: most often their own
        message = EmailMessage(
            subject=_("msc-admin test email"),
            body=render_to_string(
                "channels/email/test_email.txt", {"channel": channel, "actor": actor}
            ),
            from_email=sender,
            to=[to],
        )
    # Sentences (``msc_admin.stored``): shown now, and kept as the channel's last test.
    try:
        password = channel.read_secret().get("password", "")
        with smtp.open_connection(config, password, steps) as client:
            refused = client.sendmail(sender, [to], message.message().as_bytes())
        if refused:
            return smtp.ConnectionReport(
                ok=False,
                summary=sentence(gettext_noop("The server refused %(to)s."), to=to),
                steps=steps,
            )
    except SecretUnavailable:
        return smtp.ConnectionReport(
            ok=False, summary=sentence(gettext_noop("The stored password cannot be decrypted."))
        )
    except smtp.SmtpProblem as problem:
        said = problem.args[0] if problem.args and isinstance(problem.args[0], Sentence) else None
        return smtp.ConnectionReport(ok=False, summary=said or str(problem), steps=steps)
    return smtp.ConnectionReport(
        ok=True,
        summary=sentence(gettext_noop("Test email accepted by the server for %(to)s."), to=to),
        steps=steps,
    )


# --- identities -----------------------------------------------------------------------------


@transaction.atomic
def identity_ensure_default(*, user: User, tenant: Tenant) -> Identity:
    """Every member has a default identity: their sign-in address, verified by their invitation.
    Made when they sign in (``channels.apps``), never when a page is read."""
    found = Identity.objects.filter(user=user, is_default=True).first()
    if found is not None:
        return found
    # Made under the one-default-identity constraint: of two sign-ins at once, one makes it and
    # the other reads it.
    identity, _created = Identity.objects.get_or_create(
        user=user,
        is_default=True,
        defaults={
            "tenant": tenant,
            "email": user.email,
            "name": user.get_full_name() or user.email.split("@")[0],
            "verified_at": timezone.now(),
            "channel": first_channel_for(user, user.email),
        },
    )
    return identity


def identity_at_sign_in(*, user: User) -> None:
    """A member who signs in has their default identity from then on."""
    membership = getattr(user, "membership", None)
    if membership is not None:
        identity_ensure_default(user=user, tenant=membership.tenant)


def identity_verification_token(identity: Identity) -> str:
    return TimestampSigner(salt=IDENTITY_SALT).sign(f"{identity.pk}:{identity.email}")


@transaction.atomic
def identity_add(*, tenant: Tenant, user: User, email: str, name: str, base_url: str) -> Identity:
    # The person's own mailbox when it may send as the address, else the team's channel (an
    # address at the team's domain, added by someone whose own mailbox is another address).
    first = first_channel_for(user, email) or team_channel_for(tenant, email)
    identity = Identity.objects.create(
        tenant=tenant, user=user, email=email, name=name, channel=first
    )
    transaction.on_commit(lambda: identity_send_verification(identity=identity, base_url=base_url))
    sending_domains_check_later(channel=first)
    return identity


def identity_send_verification(*, identity: Identity, base_url: str) -> None:
    url = base_url.rstrip("/") + reverse(
        "channels:identity_verify", args=[identity_verification_token(identity)]
    )
    # To the address being added, on behalf of the person who added it: in their language.
    with in_language_of(identity.user):
        EmailMessage(
            subject=_("Confirm your sending address for msc-admin"),
            body=render_to_string(
                "channels/email/verify_identity.txt", {"identity": identity, "url": url}
            ),
            to=[identity.email],
        ).send()


@dataclass(frozen=True)
class VerificationResult:
    identity: Identity | None
    problem: str = ""


def identity_from_token(token: str) -> VerificationResult:
    try:
        value = TimestampSigner(salt=IDENTITY_SALT).unsign(token, max_age=IDENTITY_MAX_AGE)
    except SignatureExpired:
        return VerificationResult(
            None, _("This link expired. Send a new one from Delivery channels.")
        )
    except BadSignature:
        return VerificationResult(None, _("This link is not valid."))
    pk, _sep, email = value.partition(":")
    identity = Identity.objects.filter(pk=pk, email=email).select_related("user").first()
    if identity is None:
        return VerificationResult(None, _("This address was removed or changed."))
    return VerificationResult(identity)


@transaction.atomic
def identity_verify(*, identity: Identity) -> Identity:
    if identity.verified_at is None:
        identity.verified_at = timezone.now()
        identity.save(update_fields=["verified_at"])
    return identity


@transaction.atomic
def identity_rename(*, identity: Identity, name: str, actor: User) -> Identity:
    """Change the identity's From name (what its mail is signed with, ``{{sender_name}}``)."""
    before = identity.name
    if name == before:
        return identity
    Identity.objects.filter(pk=identity.pk).update(name=name)
    identity.name = name
    audit(
        tenant=identity.tenant,
        actor=actor,
        subject=sentence(gettext_noop("identity %(email)s"), email=identity.email),
        action="identity name set",
        changes={"from_name": {"from": before, "to": name}},
    )
    return identity


def identity_follow_name(*, user: User, before: str) -> None:
    """The person's name changed: their default identity takes it while it still shows the
    name it was given (their old name, or their address's local part), never one they chose."""
    identity = Identity.objects.filter(user=user, is_default=True).first()
    given = {before, user.email.split("@")[0]} - {""}
    if identity is not None and identity.name in given and user.get_full_name():
        identity_rename(identity=identity, name=user.get_full_name(), actor=user)


@transaction.atomic
def identity_set_channel(*, identity: Identity, channel: Channel | None, actor: User) -> Identity:
    if channel is not None and channel.owner_id not in (None, identity.user_id):
        raise PermissionDenied("That channel belongs to someone else.")
    if channel is not None and (refused := channel.refuses_sender(identity.email)):
        raise ValidationError(refused)
    identity.channel = channel
    identity.save(update_fields=["channel"])
    sending_domains_check_later(channel=channel)
    audit(
        tenant=identity.tenant,
        actor=actor,
        channel=channel,
        subject=sentence(gettext_noop("identity %(email)s"), email=identity.email),
        action="identity channel set",
        changes={"channel": stored_label(channel) if channel else None},
    )
    return identity


# --- blocked domains and team settings ------------------------------------------------------


@transaction.atomic
def blocked_domain_add(*, tenant: Tenant, actor: User, domain: str) -> BlockedDomain:
    blocked, created = BlockedDomain.objects.get_or_create(
        tenant=tenant, domain=domain, defaults={"created_by": actor}
    )
    if created:
        audit(
            tenant=tenant,
            actor=actor,
            subject=sentence(gettext_noop("blocked domain %(domain)s"), domain=domain),
            action="blocked domain added",
        )
    return blocked


@transaction.atomic
def blocked_domain_remove(*, blocked: BlockedDomain, actor: User) -> None:
    audit(
        tenant=blocked.tenant,
        actor=actor,
        subject=sentence(gettext_noop("blocked domain %(domain)s"), domain=blocked.domain),
        action="blocked domain removed",
    )
    blocked.delete()


@transaction.atomic
def domain_cap_add(
    *, tenant: Tenant, actor: User, limit: int, period: str, provider: str, domains: list[str]
) -> DomainCap:
    """A new cap on the team's mail to a provider or domains; it counts the mail already sent
    to them in its window (``channels.signals.domain_caps_changed``)."""
    cap = DomainCap.objects.create(
        tenant=tenant,
        limit=limit,
        period=period,
        provider=provider,
        domains=domains,
        created_by=actor,
    )
    audit(
        tenant=tenant,
        actor=actor,
        subject=sentence(gettext_noop("receiving-domain limit: %(limit)s"), limit=cap.label),
        action="receiving-domain limit added",
        changes={"limit": limit, "period": period, "provider": provider, "domains": domains},
    )
    domain_caps_changed.send(sender=DomainCap, tenant_id=tenant.pk, added=cap)
    return cap


@transaction.atomic
def domain_cap_remove(*, cap: DomainCap, actor: User) -> None:
    audit(
        tenant=cap.tenant,
        actor=actor,
        subject=sentence(gettext_noop("receiving-domain limit: %(limit)s"), limit=cap.label),
        action="receiving-domain limit removed",
    )
    cap.delete()
    domain_caps_changed.send(sender=DomainCap, tenant_id=cap.tenant_id, added=None)


# The team's sending settings are edited a section at a time, each audited under its name.
TEAM_SETTINGS_SECTIONS = {
    "throttling": "Email Connection throttling",
    "spike_protection": "Bounce-spike protection",
    "soft_bounces": "Soft-bounce policy",
}


@transaction.atomic
def team_settings_update(
    *, tenant: Tenant, actor: User, section: str, values: dict[str, Any]
) -> TeamSendingSettings:
    """Save one section of the team's sending settings (the row is made on the first save);
    the fields that changed are audited under the section's name."""
    subject = TEAM_SETTINGS_SECTIONS[section]
    settings_row, _created = TeamSendingSettings.objects.select_for_update().get_or_create(
        tenant=tenant
    )
    before = {key: getattr(settings_row, key) for key in values}
    for key, value in values.items():
        setattr(settings_row, key, value)
    settings_row.save()
    if changes := _diff(before, values):
        audit(tenant=tenant, actor=actor, subject=subject, action="updated", changes=changes)
        limits_changed.send(sender=TeamSendingSettings, tenant_id=tenant.pk, channel_ids=None)
    return settings_row

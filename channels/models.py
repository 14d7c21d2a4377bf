from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Self

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop
from django.views.decorators.debug import sensitive_variables

from accounts.models import Tenant, TenantOwned, TenantQuerySet
from channels.kinds import (
    SECURITY_NAMES,
    AuthMethod,
    ChannelKind,
    ExchangeOnPremConfig,
    Kind,
    OAuthConfig,
    Security,
    SmtpConfig,
    kind_of,
)
from channels.providers import CAP_SECONDS, GROUPS, CapPeriod
from msc_admin.crypto import seal, unseal
from msc_admin.stored import read, sentence


class ChannelStatus(models.TextChoices):
    ACTIVE = "active", gettext_lazy("Active")
    NEEDS_ATTENTION = "needs_attention", gettext_lazy("Needs attention")
    PAUSED = "paused", gettext_lazy("Paused: bounce spike")
    DISABLED = "disabled", gettext_lazy("Disabled")


class ChannelQuerySet(TenantQuerySet):
    def personal_for(self, user: Any) -> Self:
        return self.filter(owner=user)

    def team(self) -> Self:
        return self.filter(owner__isnull=True)


class Channel(TenantOwned):
    """A way to send: one user's mailbox or relay, or (owner empty) the tenant's team channel."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="channels")
    kind = models.CharField(max_length=20, choices=ChannelKind.choices)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="channels",
        help_text="Empty for the team channel.",
    )
    use_for_all_members = models.BooleanField(default=False)
    status = models.CharField(
        max_length=20, choices=ChannelStatus.choices, default=ChannelStatus.ACTIVE
    )
    status_message = models.CharField(max_length=500, blank=True)
    config = models.JSONField(default=dict, blank=True)
    # Sealed JSON (msc_admin.crypto): {"password": ...} or OAuth tokens. Never logged or shown.
    secret = models.TextField(blank=True)
    account_email = models.EmailField(blank=True)
    token_expires_at = models.DateTimeField(null=True, blank=True)
    last_test_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True)
    last_test_message = models.CharField(max_length=500, blank=True)
    # Provider push-back (421/454/4.7.x): nothing goes out through the channel until this time.
    backoff_until = models.DateTimeField(null=True, blank=True)
    backoff_level = models.PositiveSmallIntegerField(default=0)
    backoff_reason = models.CharField(max_length=300, blank=True)
    # The addresses the provider lets this mailbox send as, besides its own (Gmail's send-as
    # aliases, Exchange Online's proxy addresses), lower-cased, as last fetched
    # (``services.channel_refresh_send_as``); kept when a fetch fails, which ``send_as_problem``
    # says. Only kinds with ``restricts_senders`` use them.
    send_as = models.JSONField(default=list, blank=True)
    send_as_fetched_at = models.DateTimeField(null=True, blank=True)
    send_as_problem = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ChannelQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "kind"], condition=Q(owner__isnull=False), name="one_kind_per_user"
            ),
            models.UniqueConstraint(
                fields=["tenant"], condition=Q(owner__isnull=True), name="one_team_channel"
            ),
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def kind_spec(self) -> Kind:
        """What this channel's kind does: ``channels.kinds``."""
        return kind_of(self.kind)

    @property
    def label(self) -> str:
        """Its name in the current language, as a sentence (``msc_admin.stored``): a stored
        sentence that names the channel reads it in the reader's language."""
        kind = self.kind_spec
        if kind.retired_label and self.status == ChannelStatus.DISABLED:
            return sentence(kind.retired_label)
        if self.owner_id is None:
            return sentence(gettext_noop("Team channel: %(kind)s"), kind=kind.value.label)
        detail = kind.label_detail(self)
        if not detail:
            return sentence(kind.value.label)
        name = kind.short_label or kind.value.label
        return sentence(gettext_noop("%(kind)s (%(detail)s)"), kind=name, detail=detail)

    @property
    def is_team(self) -> bool:
        return self.owner_id is None

    @property
    def is_oauth(self) -> bool:
        return bool(self.kind_spec.oauth_provider)

    @property
    def edit_url(self) -> str:
        return self.kind_spec.edit_url(self)

    @property
    def needs_attention(self) -> bool:
        return self.status == ChannelStatus.NEEDS_ATTENTION

    @property
    def status_text(self) -> str:
        """Why it is not active (``status_message``, a stored sentence), in the reader's
        language; a message stored before as plain text reads as it was."""
        return read(self.status_message)

    @property
    def backoff_text(self) -> str:
        """Why the provider made it wait (``backoff_reason``), in the reader's language."""
        return read(self.backoff_reason)

    @property
    def sendable_addresses(self) -> list[str]:
        """What it may send as, its own address first; empty for kinds that send as anyone."""
        if not self.kind_spec.restricts_senders:
            return []
        own = [self.account_email.lower()] if self.account_email else []
        return own + [address for address in self.send_as if address not in own]

    def may_send_as(self, email: str) -> bool:
        """Whether mail From ``email`` may go through this channel (case-insensitive). A
        mailbox never fetched may send as its own address only."""
        if not self.kind_spec.restricts_senders:
            return True
        return email.strip().lower() in self.sendable_addresses

    def refuses_sender(self, email: str) -> str:
        """Why this channel cannot send From ``email``, in the user's words ("" when it can)."""
        if self.may_send_as(email):
            return ""
        allowed = self.sendable_addresses
        may = _(" or ").join(allowed) if allowed else _("no address yet (reconnect it)")
        then = (
            _("A demo mailbox's list of addresses is never read.")
            if self.oauth.demo
            else _(
                "Add the address to the mailbox at your provider, then Refresh send-as addresses."
            )
        )
        return (
            _("%(channel)s cannot send as %(email)s: the mailbox may send only as %(may)s.")
            % {
                "channel": self.label,
                "email": email,
                "may": may,
            }
            + f" {then}"
        )

    @property
    def smtp(self) -> SmtpConfig:
        return SmtpConfig.from_dict(self.config)

    @property
    def exchange(self) -> ExchangeOnPremConfig:
        return ExchangeOnPremConfig.from_dict(self.config)

    @property
    def oauth(self) -> OAuthConfig:
        return OAuthConfig.from_dict(self.config)

    @sensitive_variables("values")
    def set_secret(self, values: dict[str, Any]) -> None:
        self.secret = seal(json.dumps(values))

    def read_secret(self) -> dict[str, Any]:
        """Decrypt; raises ``SecretUnavailable`` (fail closed) when that is not possible."""
        if not self.secret:
            return {}
        return dict(json.loads(unseal(self.secret)))

    @property
    def has_password(self) -> bool:
        return bool(self.secret)


class IdentityQuerySet(TenantQuerySet):
    def verified(self) -> Self:
        return self.filter(verified_at__isnull=False)


class Identity(TenantOwned):
    """A from-address and name a user sends as. Must be verified before it can send."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="identities")
    # Indexed by identity_unique_per_user (user first).
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="identities",
        db_index=False,
    )
    email = models.EmailField()
    name = models.CharField(max_length=200)
    is_default = models.BooleanField(default=False)
    verified_at = models.DateTimeField(null=True, blank=True)
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.SET_NULL, related_name="identities"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = IdentityQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "identities"
        ordering = ["-is_default", "email"]
        constraints = [
            models.UniqueConstraint(fields=["user", "email"], name="identity_unique_per_user"),
            models.UniqueConstraint(
                fields=["user"], condition=Q(is_default=True), name="one_default_identity"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    @property
    def is_verified(self) -> bool:
        return self.verified_at is not None


class BlockedDomainQuerySet(TenantQuerySet):
    pass


class BlockedDomain(TenantOwned):
    # Indexed by blocked_domain_unique.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="blocked_domains", db_index=False
    )
    domain = models.CharField(max_length=253)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = BlockedDomainQuerySet.as_manager()

    class Meta:
        ordering = ["domain"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "domain"], name="blocked_domain_unique")
        ]

    def __str__(self) -> str:
        return self.domain


class TeamSendingSettings(models.Model):
    """Tenant-wide Email Connection throttling (enforced by the sending pipeline)."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="sending")
    throttling_enabled = models.BooleanField(default=True)
    batch_size = models.PositiveIntegerField(default=25)
    wait_seconds = models.PositiveIntegerField(default=45)
    # Bounce-spike protection (bounces.spikes): pause a channel when more than this share of the
    # mail it sent in the last hour has bounced, once at least ``spike_min_sent`` went out.
    spike_protection = models.BooleanField(default=True)
    spike_threshold_pct = models.PositiveSmallIntegerField(default=10)
    spike_min_sent = models.PositiveIntegerField(default=20)
    # Soft bounces (mailbox full, greylisting) retry a campaign step; this many to one address
    # within this many days end the person's campaign and suppress the address.
    soft_bounce_limit = models.PositiveSmallIntegerField(default=3)
    soft_bounce_days = models.PositiveSmallIntegerField(default=7)
    # Receiving providers (``channels.providers.GROUPS``) paused by a provider bounce spike
    # (``bounces.spikes``): mail to their mailboxes waits until an admin resumes them.
    paused_providers = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"Sending settings of {self.tenant}"

    @classmethod
    def of_tenant(cls, tenant_id: int) -> TeamSendingSettings:
        """The team's settings: its row, or the defaults (unsaved) until they are first saved."""
        return cls.objects.filter(tenant_id=tenant_id).first() or cls(tenant_id=tenant_id)


class AuditQuerySet(TenantQuerySet):
    pass


class ChannelAuditEvent(TenantOwned):
    """Who changed which channel setting, when. Secret values are never recorded."""

    # Indexed by audit_tenant_recent.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    channel = models.ForeignKey(Channel, null=True, on_delete=models.SET_NULL, related_name="+")
    subject = models.CharField(max_length=300)
    action = models.CharField(max_length=60)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="audit_tenant_recent")]

    def __str__(self) -> str:
        return f"{self.action} {self.subject}"


class MscServer(models.Model):
    """One relay of the legacy MSC pool, run by platform staff. Legacy tenants' MSC channels
    send through an enabled server of the pool (``channels.pool.pick_server``); its password is
    sealed like every secret and never shown again."""

    name = models.CharField(max_length=100, help_text="A label staff recognise, e.g. msc-relay-1.")
    host = models.CharField(max_length=253)
    port = models.PositiveIntegerField(default=587)
    security = models.CharField(max_length=10, choices=Security.choices, default=Security.STARTTLS)
    auth_method = models.CharField(
        max_length=10, choices=AuthMethod.choices, default=AuthMethod.PLAIN
    )
    username = models.CharField(max_length=200)
    secret = models.TextField(blank=True)  # sealed password
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_check_at = models.DateTimeField(null=True, blank=True)
    last_check_ok = models.BooleanField(null=True)
    last_check_message = models.CharField(max_length=500, blank=True)

    class Meta:
        db_table = "staff_mscserver"  # created by the staff app, which ran the pool before
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["host", "port", "username"], name="msc_server_once")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"

    @property
    def security_name(self) -> str:
        return SECURITY_NAMES.get(self.security, self.security)

    @property
    def config(self) -> SmtpConfig:
        return SmtpConfig(
            host=self.host,
            port=self.port,
            security=self.security,
            auth_method=self.auth_method,
            username=self.username,
        )

    @sensitive_variables("password")
    def set_password(self, password: str) -> None:
        self.secret = seal(password)

    def password(self) -> str:
        """Decrypt; raises ``SecretUnavailable`` (fail closed)."""
        return unseal(self.secret) if self.secret else ""


class ReceivingDomain(models.Model):
    """What runs a recipient domain's mailboxes, by its MX (``channels.providers``): a fact of
    public DNS shared by every tenant, re-checked weekly."""

    domain = models.CharField(max_length=253, unique=True)
    provider = models.CharField(max_length=10)  # google, microsoft, yahoo, other, unknown
    mx_host = models.CharField(max_length=253, blank=True)  # the most preferred MX host
    checked_at = models.DateTimeField()
    detail = models.CharField(max_length=300, blank=True)  # why the last look-up had no answer

    def __str__(self) -> str:
        return f"{self.domain}: {self.provider}"


class DomainCapQuerySet(TenantQuerySet):
    pass


class DomainCap(TenantOwned):
    """At most ``limit`` messages per rolling hour or day from the whole tenant (every channel)
    to a receiving provider's mailboxes or to a list of domains (``sending.domainlimits``)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="domain_caps")
    limit = models.PositiveIntegerField()
    period = models.CharField(max_length=4, choices=CapPeriod.choices)
    provider = models.CharField(max_length=10, blank=True)  # a key of providers.GROUPS, or …
    domains = models.JSONField(default=list, blank=True)  # … these domains
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = DomainCapQuerySet.as_manager()

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.label

    @property
    def seconds(self) -> int:
        return CAP_SECONDS[CapPeriod(self.period)]

    @property
    def target(self) -> str:
        if self.provider:
            name = GROUPS.get(self.provider, self.provider)
            return sentence(gettext_noop("%(provider)s mailboxes"), provider=name)
        return ", ".join(self.domains)

    @property
    def label(self) -> str:
        """ "At most 200 an hour to Google mailboxes" (a sentence: ``msc_admin.stored``)."""
        if self.period == CapPeriod.HOUR:
            text = gettext_noop("At most %(limit)s an hour to %(target)s")
        else:
            text = gettext_noop("At most %(limit)s a day to %(target)s")
        return sentence(text, limit=self.limit, target=self.target)

    def covers(self, domain: str, provider: str) -> bool:
        return provider == self.provider if self.provider else domain in self.domains


class DomainCheckState(models.TextChoices):
    PASS = "pass", gettext_lazy("Pass")
    WARN = "warn", gettext_lazy("Warning")
    FAIL = "fail", gettext_lazy("Fail")
    UNKNOWN = "unknown", gettext_lazy("Could not check")


class SendingDomainCheckQuerySet(TenantQuerySet):
    def needing_attention(self) -> Self:
        return self.filter(state__in=[DomainCheckState.FAIL, DomainCheckState.WARN])


class SendingDomainCheck(TenantOwned):
    """The DNS check (SPF, DKIM, DMARC, MX) of one domain that a channel sends for, as last
    looked up (``channels.domaincheck``). Read by the pages; written only by the check.

    ``checks`` holds one line per check: ``{"key", "state", "message", "record", "checked_at"}``
    and, when the last look-up got no answer but an earlier one did, that earlier line with
    ``"retry_at"`` and ``"retry_message"`` added (a time-out never hides a definite result)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    # Indexed by domain_check_once (channel first).
    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, related_name="domain_checks", db_index=False
    )
    domain = models.CharField(max_length=253)
    dkim_selector = models.CharField(max_length=63, blank=True)
    state = models.CharField(
        max_length=10, choices=DomainCheckState.choices, default=DomainCheckState.UNKNOWN
    )
    checks = models.JSONField(default=list, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SendingDomainCheckQuerySet.as_manager()

    class Meta:
        ordering = ["domain", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "domain"], name="domain_check_once")
        ]

    def __str__(self) -> str:
        return f"{self.domain} ({self.get_state_display()})"

    @property
    def lines(self) -> list[dict[str, Any]]:
        """``checks`` as the card shows them: dates read back into datetimes, findings in the
        reader's language (stored as sentences, ``msc_admin.stored``)."""
        from channels.domaincheck.checks import shown_value

        shown = []
        for line in self.checks:
            record = line.get("record")
            shown.append(
                {
                    **line,
                    "record": record and {**record, "shown": shown_value(record["value"])},
                    "message": read(line.get("message")),
                    "retry_message": read(line.get("retry_message")),
                    "checked_at": _when(line.get("checked_at")),
                    "retry_at": _when(line.get("retry_at")),
                }
            )
        return shown

    @property
    def worst(self) -> dict[str, Any] | None:
        """The first line as bad as the whole: what the home page and the overview say."""
        return next((line for line in self.lines if line.get("state") == self.state), None)


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None

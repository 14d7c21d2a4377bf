"""Which channel a message goes out through (the routing rules of the product brief)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from channels import kinds
from channels.forms import oauth_client_configured
from channels.models import Channel, ChannelStatus, Identity


class Source(models.TextChoices):
    WEB = "web", gettext_lazy("Web app")
    GMAIL_PLUGIN = "gmail_plugin", gettext_lazy("Gmail plugin")
    O365_PLUGIN = "o365_plugin", gettext_lazy("Office 365 plugin")
    API = "api", "API"


def ways_to_connect(*, admin: bool) -> str:
    """What a member can do on this server to get a channel for their mail, as a clause:
    connect a mailbox of a kind whose OAuth client this server has (Gmail, Exchange Online;
    never one it has not), or their own SMTP service, or have the team SMTP channel (an admin
    sets it up, anyone else asks for it)."""
    mailboxes = [
        str(kind.short_label or kind.label)
        for kind in kinds.KINDS.values()
        if kind.oauth_provider and oauth_client_configured(kind.oauth_provider)
    ]
    if mailboxes:
        text = (
            _(
                "connect your %(mailboxes)s mailbox (or your own SMTP service) under Delivery "
                "channels, or set up a team SMTP channel under Team settings"
            )
            if admin
            else _(
                "connect your %(mailboxes)s mailbox (or your own SMTP service) under Delivery "
                "channels, or ask your admin for a team SMTP channel"
            )
        )
        return text % {"mailboxes": _(" or ").join(mailboxes)}
    if admin:
        return _(
            "set up a team SMTP channel under Team settings, or your own SMTP service under "
            "Delivery channels"
        )
    return _(
        "ask your admin for a team SMTP channel, or set up your own SMTP service under "
        "Delivery channels"
    )


def no_channel(user: User) -> str:
    """Why ``user``'s mail has no channel, and what to do about it."""
    membership = getattr(user, "membership", None)
    admin = bool(membership and membership.is_admin)
    return _("No channel yet: %(what_to_do)s.") % {"what_to_do": ways_to_connect(admin=admin)}


@dataclass(frozen=True)
class Route:
    channel: Channel | None
    reason: str

    @property
    def can_send(self) -> bool:
        return self.channel is not None and self.channel.status == ChannelStatus.ACTIVE

    @property
    def problem(self) -> str:
        """Why nothing goes through this route now, and what to do ("" when it can send)."""
        if self.channel is None:
            return self.reason
        if not self.can_send:
            return _(
                "%(channel)s is not working right now: repair it under Delivery channels (or "
                "choose another channel for the identity)."
            ) % {"channel": self.channel.label}
        return ""


def _plugin_channel(user: User, source: str) -> Channel | None:
    """The user's own channel of a kind that the plugin ``source`` always sends through."""
    mine = Channel.objects.filter(owner=user, kind__in=kinds.values(plugin=source))
    return mine.order_by("created_at").first()


def route(*, user: User, identity: Identity | None, source: str) -> Route:
    if source == Source.GMAIL_PLUGIN:
        channel = _plugin_channel(user, source)
        return Route(
            channel,
            _("The Gmail plugin always sends through your Gmail connection.")
            if channel
            else _("Connect Gmail to send from the Gmail plugin."),
        )
    if source == Source.O365_PLUGIN:
        channel = _plugin_channel(user, source)
        return Route(
            channel,
            _("The Office 365 plugin always sends through your Exchange connection.")
            if channel
            else _("Connect Exchange to send from the Office 365 plugin."),
        )
    if identity is None:
        return Route(None, _("Choose the identity to send as."))
    if not identity.is_verified:
        return Route(
            None,
            _("%(email)s is not verified yet: open the link we emailed to it.")
            % {"email": identity.email},
        )
    chosen = identity.channel if identity.channel_id is not None else None
    if chosen is not None and chosen.status != ChannelStatus.DISABLED:
        if refused := chosen.refuses_sender(identity.email):
            return Route(
                None,
                _("%(refused)s Or choose another channel for %(email)s.")
                % {"refused": refused, "email": identity.email},
            )
        return Route(
            chosen, _("%(email)s sends through its chosen channel.") % {"email": identity.email}
        )
    if identity.is_default:
        team = Channel.objects.filter(
            tenant_id=identity.tenant_id, owner__isnull=True, use_for_all_members=True
        ).first()
        if team is not None:
            return Route(team, _("Your default identity uses the team channel."))
    elif (
        Channel.objects.filter(tenant_id=identity.tenant_id)
        .exclude(status=ChannelStatus.DISABLED)
        .exists()
    ):
        return Route(
            None,
            _("Choose a channel for %(email)s on Delivery channels.") % {"email": identity.email},
        )
    return Route(None, no_channel(user))


def routing_table(user: User, identities: list[Identity]) -> list[tuple[str, Route]]:
    rows = [
        (str(source.label), route(user=user, identity=None, source=source))
        for source in (Source.GMAIL_PLUGIN, Source.O365_PLUGIN)
    ]
    for identity in identities:
        rows.append(
            (
                _("Web app as %(email)s") % {"email": identity.email},
                route(user=user, identity=identity, source=Source.WEB),
            )
        )
    return rows

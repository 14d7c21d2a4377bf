"""Which channel a message goes out through (the routing rules of the product brief)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models

from accounts.models import User
from channels import kinds
from channels.forms import oauth_client_configured
from channels.models import Channel, ChannelStatus, Identity


class Source(models.TextChoices):
    WEB = "web", "Web app"
    GMAIL_PLUGIN = "gmail_plugin", "Gmail plugin"
    O365_PLUGIN = "o365_plugin", "Office 365 plugin"
    API = "api", "API"


def ways_to_connect(*, admin: bool) -> str:
    """What a member can do on this server to get a channel for their mail, as a clause:
    connect a mailbox of a kind whose OAuth client this server has (Gmail, Exchange Online;
    never one it has not), or their own SMTP service, or have the team SMTP channel (an admin
    sets it up, anyone else asks for it)."""
    mailboxes = [
        kind.short_label or kind.label
        for kind in kinds.KINDS.values()
        if kind.oauth_provider and oauth_client_configured(kind.oauth_provider)
    ]
    team = (
        "set up a team SMTP channel under Team settings"
        if admin
        else "ask your admin for a team SMTP channel"
    )
    if mailboxes:
        return (
            f"connect your {' or '.join(mailboxes)} mailbox (or your own SMTP service) under "
            f"Delivery channels, or {team}"
        )
    own = "your own SMTP service" if admin else "set up your own SMTP service"
    return f"{team}, or {own} under Delivery channels"


def no_channel(user: User) -> str:
    """Why ``user``'s mail has no channel, and what to do about it."""
    membership = getattr(user, "membership", None)
    admin = bool(membership and membership.is_admin)
    return f"No channel yet: {ways_to_connect(admin=admin)}."


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
            return (
                f"{self.channel.label} is not working right now: repair it under Delivery "
                "channels (or choose another channel for the identity)."
            )
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
            "The Gmail plugin always sends through your Gmail connection."
            if channel
            else "Connect Gmail to send from the Gmail plugin.",
        )
    if source == Source.O365_PLUGIN:
        channel = _plugin_channel(user, source)
        return Route(
            channel,
            "The Office 365 plugin always sends through your Exchange connection."
            if channel
            else "Connect Exchange to send from the Office 365 plugin.",
        )
    if identity is None:
        return Route(None, "Choose the identity to send as.")
    if not identity.is_verified:
        return Route(None, f"{identity.email} is not verified yet: open the link we emailed to it.")
    chosen = identity.channel if identity.channel_id is not None else None
    if chosen is not None and chosen.status != ChannelStatus.DISABLED:
        if refused := chosen.refuses_sender(identity.email):
            return Route(None, f"{refused} Or choose another channel for {identity.email}.")
        return Route(chosen, f"{identity.email} sends through its chosen channel.")
    if identity.is_default:
        team = Channel.objects.filter(
            tenant_id=identity.tenant_id, owner__isnull=True, use_for_all_members=True
        ).first()
        if team is not None:
            return Route(team, "Your default identity uses the team channel.")
    elif (
        Channel.objects.filter(tenant_id=identity.tenant_id)
        .exclude(status=ChannelStatus.DISABLED)
        .exists()
    ):
        return Route(None, f"Choose a channel for {identity.email} on Delivery channels.")
    return Route(None, no_channel(user))


def routing_table(user: User, identities: list[Identity]) -> list[tuple[str, Route]]:
    rows = [
        (Source.GMAIL_PLUGIN.label, route(user=user, identity=None, source=Source.GMAIL_PLUGIN)),
        (Source.O365_PLUGIN.label, route(user=user, identity=None, source=Source.O365_PLUGIN)),
    ]
    for identity in identities:
        rows.append(
            (f"Web app as {identity.email}", route(user=user, identity=identity, source=Source.WEB))
        )
    return rows

"""Demo channels of every kind (legacy MSC on Globex only). Called by ``seed_demo``."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.models import Tenant, User
from channels import services
from channels.kinds import ChannelKind, ExchangeOnPremConfig, OAuthConfig, Security, SmtpConfig
from channels.models import BlockedDomain, Channel, Identity, MscServer, TeamSendingSettings

DEMO_SMTP_PORT = 2525
# What the demo relay (manage.py demo_smtp_server, which bin/run starts) accepts.
DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-smtp-password"  # noqa: S105 - a documented demo credential on loopback
DEMO_OAUTH_TOKEN = "demo-access-token"  # noqa: S105 - the demo's placeholder OAuth token


def _demo_smtp(domain: str) -> SmtpConfig:
    return SmtpConfig(
        host="localhost",
        port=DEMO_SMTP_PORT,
        security=Security.STARTTLS,
        auth_method="PLAIN",
        username=DEMO_USERNAME,
        sending_domain=domain,
    )


def _oauth(tenant: Tenant, owner: User, kind: str, provider: str) -> None:
    """A mailbox connected with a placeholder token, shown as the demo's placeholder (not a real
    sign-in). ``bin/run`` points Gmail's SMTP at the demo relay (which accepts that token) and
    reads the mailbox from a local folder."""
    channel, _ = Channel.objects.get_or_create(tenant=tenant, owner=owner, kind=kind)
    channel.account_email = owner.email
    channel.config = OAuthConfig(provider=provider, uid=f"demo-{owner.pk}", demo=True).to_dict()
    channel.set_secret({"access_token": DEMO_OAUTH_TOKEN, "refresh_token": "demo-refresh-token"})
    channel.token_expires_at = timezone.now() + timedelta(days=365)
    channel.save()


def seed_channels(tenants: dict[str, Tenant]) -> None:
    acme, globex = tenants["acme"], tenants["globex"]
    users = {u.email: u for u in User.objects.filter(membership__tenant__in=[acme, globex])}
    for tenant, domain, admin in (
        (acme, "acme.test", "admin@acme.test"),
        (globex, "globex.test", "admin@globex.test"),
    ):
        TeamSendingSettings.objects.get_or_create(tenant=tenant)
        if not Channel.objects.filter(tenant=tenant, owner__isnull=True).exists():
            services.channel_save_smtp(
                tenant=tenant,
                actor=users[admin],
                owner=None,
                config=_demo_smtp(domain),
                password=DEMO_PASSWORD,
                use_for_all_members=True,
            )
        for user in users.values():
            if user.membership.tenant_id == tenant.pk:
                services.identity_ensure_default(user=user, tenant=tenant)
    # Placeholders, and their cards say so: connecting a real mailbox needs an OAuth client,
    # which the demo has not (so every other card says that connections are not available on
    # this server). The demo relay stands in for Gmail's SMTP and a local folder for its
    # inbox; nothing stands in for Microsoft Graph, so the Exchange Online one cannot send.
    _oauth(acme, users["rep@acme.test"], ChannelKind.GMAIL, "google")
    _oauth(acme, users["admin@acme.test"], ChannelKind.EXCHANGE_ONLINE, "microsoft")
    rep = users["rep@acme.test"]
    if not Channel.objects.filter(owner=rep, kind=ChannelKind.CUSTOM_SMTP).exists():
        services.channel_save_smtp(
            tenant=acme,
            actor=rep,
            owner=rep,
            config=_demo_smtp("acme.test"),
            password=DEMO_PASSWORD,
        )
    gina = users["admin@globex.test"]
    exchange = Channel.objects.filter(owner=gina, kind=ChannelKind.EXCHANGE_ONPREM).first()
    if exchange is None:
        exchange = services.channel_save_exchange_onprem(
            tenant=globex,
            actor=gina,
            owner=gina,
            config=ExchangeOnPremConfig(
                autodiscover=True, username="GLOBEX\\gina", email=gina.email, daily_limit=1000
            ),
            password="demo-exchange-password",  # noqa: S106
        )
    # Gina's Exchange on-premises server is for show (its card and audit log): the server does
    # not exist, so her mail goes through the team channel, not through it (as her first
    # channel it was given to her identities; data seeded before this is put right too).
    for identity in Identity.objects.filter(user=gina, channel=exchange):
        services.identity_set_channel(identity=identity, channel=None, actor=gina)
    services.channel_select_legacy(
        tenant=globex, actor=users["rep@globex.test"], owner=users["rep@globex.test"]
    )
    _msc_pool()
    BlockedDomain.objects.get_or_create(tenant=acme, domain="competitor.test")


def _msc_pool() -> None:
    """The staff's MSC pool: one server, the local demo relay."""
    config = _demo_smtp("")
    server, _ = MscServer.objects.get_or_create(
        host=config.host,
        port=config.port,
        username=config.username,
        defaults={"name": "msc-demo-relay", "security": config.security},
    )
    server.set_password(DEMO_PASSWORD)
    server.save()

from typing import Any

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChannelsConfig(AppConfig):
    # The label avoids any clash with the unrelated PyPI package "channels", which we never use.
    name = "channels"
    label = "delivery_channels"
    verbose_name = _("Delivery channels")

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from accounts import home
        from accounts.signals import name_changed
        from channels import oauth  # noqa: F401 - connects the allauth signal receivers
        from channels.domaincheck.selectors import home_notices
        from channels.home import home_attention, home_tiles

        user_logged_in.connect(_signed_in, dispatch_uid="channels.identity_at_sign_in")
        name_changed.connect(_name_changed, dispatch_uid="channels.identity_follow_name")
        home.add_notices(home_notices)
        home.add_tiles(home_tiles)
        home.add_attention(home_attention)
        _audit_labels()


def _name_changed(sender: Any, user: Any, before: str, **kwargs: Any) -> None:
    from channels.services import identity_follow_name

    identity_follow_name(user=user, before=before)


def _audit_labels() -> None:
    """What the channel audit log's stored field names read as (``msc_admin.audit``): the
    settings forms' labels, and the rest of what channel services record."""
    from channels.forms import SoftBounceForm, SpikeProtectionForm, ThrottlingForm
    from channels.kinds import SECURITY_NAMES
    from channels.kinds.custom_smtp import SmtpForm
    from channels.kinds.exchange_onprem import ExchangeOnPremForm
    from msc_admin import audit

    audit.register(
        [SmtpForm, ExchangeOnPremForm, ThrottlingForm, SpikeProtectionForm, SoftBounceForm],
        labels={
            "use_for_all_members": "Used for every member",
            "from_name": "From name",
            "password": "Password",
            "tokens": "Sign-in tokens",
            "provider": "Provider",
            "uid": "Account id",
            "scopes": "Permissions",
            "trial": "Trial account",
            "reading": "Bounces read",
            "demo": "Demo placeholder",
            "channel": "Channel",
            "reason": "Reason",
            "ok": "Passed",
            "result": "Result",
            "to": "Sent to",
            # What bounce-spike protection records when it pauses or resumes a channel.
            "sent": "Sent in the last hour",
            "bounced": "Bounced in the last hour",
            "threshold_pct": "Team's limit (%)",
            "held": "Messages held",
            "bounces_undone": "Bounces marked “not a bounce”",
            # A custom SMTP channel's own sending limits (empty: none).
            "per_minute": "Limit per minute",
            "per_hour": "Limit per hour",
            "per_day": "Limit per 24 hours",
            # What the suppression list's services record.
            "added": "Addresses added",
            "detail": "Reason",
            # A mailbox's addresses it may send as, as its provider listed them.
            "send_as": "Send-as addresses",
            # A limit by receiving domain (Team settings).
            "limit": "At most",
            "period": "Per",
            "domains": "To domains",
        },
        values={
            "security": SECURITY_NAMES,
            "provider": {"google": "Google", "microsoft": "Microsoft", "yahoo": "Yahoo"},
            "period": {"hour": "hour", "day": "day"},
        },
    )


def _signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    # Signing in is a write request anyway (last_login): the default identity is made here, so
    # that no page has to make it when it is read.
    from channels.services import identity_at_sign_in

    identity_at_sign_in(user=user)

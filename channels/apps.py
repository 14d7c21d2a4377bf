from typing import Any

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


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
    from channels.services import SECRET_CHANGED
    from msc_admin import audit

    audit.register(
        [SmtpForm, ExchangeOnPremForm, ThrottlingForm, SpikeProtectionForm, SoftBounceForm],
        labels={
            "use_for_all_members": _("Used for every member"),
            "from_name": _("From name"),
            "password": _("Password"),
            "tokens": _("Sign-in tokens"),
            "provider": _("Provider"),
            "uid": _("Account id"),
            "scopes": _("Permissions"),
            "trial": _("Trial account"),
            "reading": _("Bounces read"),
            "demo": _("Demo placeholder"),
            "channel": _("Channel"),
            "reason": _("Reason"),
            "ok": _("Passed"),
            "result": _("Result"),
            "to": _("Sent to"),
            # What bounce-spike protection records when it pauses or resumes a channel.
            "sent": _("Sent in the last hour"),
            "bounced": _("Bounced in the last hour"),
            "threshold_pct": _("Team's limit (%)"),
            "held": _("Messages held"),
            "bounces_undone": _("Bounces marked “not a bounce”"),
            # A custom SMTP channel's own sending limits (empty: none).
            "per_minute": _("Limit per minute"),
            "per_hour": _("Limit per hour"),
            "per_day": _("Limit per 24 hours"),
            # What the suppression list's services record.
            "added": _("Addresses added"),
            "detail": _("Reason"),
            # A mailbox's addresses it may send as, as its provider listed them.
            "send_as": _("Send-as addresses"),
            # A limit by receiving domain (Team settings).
            "limit": _("At most"),
            "period": _("Per"),
            "domains": _("To domains"),
        },
        values={
            "security": SECURITY_NAMES,
            "provider": {"google": "Google", "microsoft": "Microsoft", "yahoo": "Yahoo"},
            "period": {"hour": _("hour"), "day": _("day")},
        },
        words={SECRET_CHANGED: _("changed (value not recorded)")},
        actions={
            "created": pgettext_lazy("audit action", "created"),
            "updated": pgettext_lazy("audit action", "updated"),
            "enabled again": pgettext_lazy("audit action", "enabled again"),
            "identity channel set": pgettext_lazy("audit action", "identity channel set"),
            "identity name set": pgettext_lazy("audit action", "identity name set"),
            "send-as addresses refreshed": pgettext_lazy(
                "audit action", "send-as addresses refreshed"
            ),
            "needs attention": pgettext_lazy("audit action", "needs attention"),
            "paused (bounce spike)": pgettext_lazy("audit action", "paused (bounce spike)"),
            "resumed after bounce spike": pgettext_lazy(
                "audit action", "resumed after bounce spike"
            ),
            "paused: bounce spike": pgettext_lazy("audit action", "paused: bounce spike"),
            "resumed after a bounce spike": pgettext_lazy(
                "audit action", "resumed after a bounce spike"
            ),
            "retired": pgettext_lazy("audit action", "retired"),
            "removed": pgettext_lazy("audit action", "removed"),
            "tested": pgettext_lazy("audit action", "tested"),
            "sent test email": pgettext_lazy("audit action", "sent test email"),
            "blocked domain added": pgettext_lazy("audit action", "blocked domain added"),
            "blocked domain removed": pgettext_lazy("audit action", "blocked domain removed"),
            "receiving-domain limit added": pgettext_lazy(
                "audit action", "receiving-domain limit added"
            ),
            "receiving-domain limit removed": pgettext_lazy(
                "audit action", "receiving-domain limit removed"
            ),
            "suppressed": pgettext_lazy("audit action", "suppressed"),
            "suppression removed": pgettext_lazy("audit action", "suppression removed"),
            "suppressions imported": pgettext_lazy("audit action", "suppressions imported"),
        },
    )


def _signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    # Signing in is a write request anyway (last_login): the default identity is made here, so
    # that no page has to make it when it is read.
    from channels.services import identity_at_sign_in

    identity_at_sign_in(user=user)

"""MSC servers (legacy): the shared relay pool kept for legacy ToutApp tenants only. Mail goes
out through an enabled server of the pool (``channels.pool``, run by staff). A tenant moved off
legacy never reads "MSC" again: its retired channel, and what was written about it, are shown
in the words of ``RETIRED_WORDING``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from channels.kinds.base import Card, Kind
from channels.kinds.config import ChannelKind, SmtpConfig
from channels.transports import RETRY, SendFailure
from msc_admin.crypto import SecretUnavailable

if TYPE_CHECKING:
    from channels.models import Channel
    from channels.transports import Handover

RETIRED_MSC_LABEL = "Shared legacy servers (retired)"
# What a tenant moved off legacy reads instead, in this order (applied in Python to what is
# shown, and in SQL by the move to what was stored). Stored texts are in English (written by
# workers, or by services in English), so the pairs are English: ``ChannelKind.MSC_LEGACY``'s
# label, untranslated, first.
RETIRED_WORDING = (
    ("MSC servers (legacy)", RETIRED_MSC_LABEL),
    ("MSC server", "shared legacy server"),
)


def retired_msc_wording(text: str) -> str:
    """``text`` as a tenant moved off legacy ToutApp reads it."""
    for old, new in RETIRED_WORDING:
        text = text.replace(old, new)
    return text


def legacy_relay(recipient: str) -> tuple[SmtpConfig, str]:
    """A server of the staff's MSC pool and its password."""
    from channels.pool import pick_server

    server = pick_server(recipient)
    if server is None:
        raise SendFailure(RETRY, "No MSC server is available right now.")
    try:
        return server.config, server.password()
    except SecretUnavailable:
        raise SendFailure(RETRY, "The MSC server's password cannot be read right now.") from None


class MscLegacy(Kind):
    value = ChannelKind.MSC_LEGACY
    card = Card(
        key=ChannelKind.MSC_LEGACY,
        name=_("MSC servers (legacy)"),
        summary=_("The shared server pool kept for legacy ToutApp customers."),
        authentication=_("No DKIM and no SPF for your domain."),
        throttling=_("Shared pool limits."),
        bounce_tracking=_(
            "Limited: the MSC servers report no bounces; one is tracked only when it returns to "
            "a Gmail or Exchange Online mailbox connected here."
        ),
        legacy_only=True,
        warning=_(
            "Mail from the shared MSC servers is not signed with DKIM nor covered by your SPF "
            "record, so more of it lands in spam. Connect Gmail or Exchange instead."
        ),
    )
    staff_label = "MSC servers"
    short_label = _("MSC servers")
    overview_template = "channels/kinds/msc_legacy.html"
    # Only a move off legacy disables an MSC channel (the same words as RETIRED_MSC_LABEL).
    retired_label = _("Shared legacy servers (retired)")
    not_throttled = _("Not throttled: MSC servers never are.")
    domain_check = True  # shown to staff only

    def relay_host(self, channel: Channel) -> str:
        """The pool's first enabled server: the servers of the pool share one set-up."""
        from channels.models import MscServer

        server = MscServer.objects.filter(enabled=True).order_by("name", "pk").first()
        return server.host if server else ""

    def provider(self, channel: Channel) -> str:
        return gettext("The MSC servers")

    def deliver(
        self, channel: Channel, *, sender: str, recipient: str, data: bytes, on_handover: Handover
    ) -> str:
        from channels.transports import smtp

        config, password = legacy_relay(recipient)
        return smtp.send_mime(
            config,
            password,
            sender=sender,
            recipient=recipient,
            data=data,
            on_handover=on_handover,
            reuse=channel.pk,
        )


KIND = MscLegacy()

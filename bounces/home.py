"""What bounce tracking adds to the home page's attention list (``accounts.home``): inboxes
whose last scan for bounces failed (one query on the tenant's cursors, one per channel and
folder, counted by channel)."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext, ngettext

from accounts.home import Attention
from bounces.models import InboxCursor
from channels.models import ChannelStatus


def home_attention(request: HttpRequest) -> list[Attention]:
    member = getattr(request, "membership", None)
    if not member:
        return []
    failing = (
        InboxCursor.objects.for_tenant(request.tenant)  # type: ignore[attr-defined]
        .filter(ok=False)
        .exclude(channel__status=ChannelStatus.DISABLED)
    )
    if not member.is_admin:
        failing = failing.filter(channel__owner=member.user_id)
    n = failing.values("channel_id").distinct().count()  # a cursor per folder: count inboxes
    if member.is_admin:
        text = ngettext(
            "%(n)s inbox could not be read for bounces at the last scan: bounces there are not "
            "counted until it reads again",
            "%(n)s inboxes could not be read for bounces at the last scan: bounces there are not "
            "counted until it reads again",
            n,
        )
    else:
        text = gettext(
            "%(n)s your inbox could not be read for bounces at the last scan: bounces there are "
            "not counted until it reads again"
        )
    return [
        Attention(
            "failing-scans",
            n,
            text % {"n": n},
            reverse("channels:overview"),
            bad=True,
        )
    ]

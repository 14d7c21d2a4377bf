"""What sending adds to the Limits section of Delivery channels (``channels.overview_page``):
the user's usage and headroom on each channel they send through, as on the Outbox."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils import timezone

from accounts.home import Notice
from sending.selectors import connection_usage


def channel_limit_panels(request: HttpRequest) -> list[Notice]:
    usage = connection_usage(request.user)  # type: ignore[arg-type]
    return [Notice("sending/_channels_usage.html", {"usage": usage, "now": timezone.now()})]

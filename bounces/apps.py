from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import AppConfig
from django.utils.translation import gettext_lazy

if TYPE_CHECKING:
    from sending.services.suppressions import Evidence


class BouncesConfig(AppConfig):
    name = "bounces"
    verbose_name = gettext_lazy("Bounce tracking")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import home
        from analytics.templatetags import bounce_reasons
        from bounces.home import home_attention
        from msc_admin import stored
        from sending.services import suppressions

        home.add_attention(home_attention)
        stored.READERS["reason"] = bounce_reasons.words  # stored sentences' bounce reasons
        suppressions.standing_hard_bounce = _standing_hard_bounce


def _standing_hard_bounce(message_id: int) -> Evidence | None:
    """The hard bounce that counts for a message (its first not undone), for a suppression
    entry to keep as evidence when the bounce it had is taken back."""
    from bounces.models import BounceEvent
    from sending.services.suppressions import Evidence

    event = (
        BounceEvent.objects.filter(message_id=message_id, undone_at__isnull=True)
        .order_by("pk")
        .first()
    )
    if event is None or not event.hard:
        return None
    code = f"{event.smtp_code} {event.status}".strip()
    return Evidence(event_id=event.pk, code=code, at=event.received_at)

from typing import Any

from django.apps import AppConfig


class SendingConfig(AppConfig):
    name = "sending"
    verbose_name = "Sending"

    def ready(self) -> None:
        from accounts import home
        from channels import overview_page
        from channels.signals import domain_caps_changed, limits_changed
        from sending.channel_page import channel_limit_panels
        from sending.home import home_attention, home_tiles

        home.add_tiles(home_tiles)
        home.add_attention(home_attention)
        overview_page.add_limit_panels(channel_limit_panels)

        limits_changed.connect(_limits_changed, dispatch_uid="sending.limits_changed")
        domain_caps_changed.connect(_domain_caps_changed, dispatch_uid="sending.domain_caps")


def _limits_changed(
    sender: Any, tenant_id: int, channel_ids: list[int] | None, **kwargs: Any
) -> None:
    from channels.models import Channel
    from sending import quota
    from sending.services import messages_release_limit_holds

    # A channel's own limits changed: its rolling windows count what it sent before they were
    # in force. (None is the team's throttling, a batch window: nothing to recount.)
    for channel in Channel.objects.filter(tenant_id=tenant_id, pk__in=channel_ids or []):
        quota.windows_recount(channel)
    messages_release_limit_holds(tenant_id=tenant_id, channel_ids=channel_ids)


def _domain_caps_changed(sender: Any, tenant_id: int, added: Any, **kwargs: Any) -> None:
    from sending import domainlimits

    # A new cap counts what was sent before it; the mail the caps held is looked at again.
    if added is not None:
        domainlimits.slots_recount(added)
    domainlimits.messages_release_cap_holds(tenant_id=tenant_id)

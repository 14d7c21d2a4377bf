from typing import Any

from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    # The label avoids any clash with the unrelated PyPI package "channels", which we never use.
    name = "channels"
    label = "delivery_channels"
    verbose_name = "Delivery channels"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from channels import oauth  # noqa: F401 - connects the allauth signal receivers

        user_logged_in.connect(_signed_in, dispatch_uid="channels.identity_at_sign_in")


def _signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    # Signing in is a write request anyway (last_login): the default identity is made here, so
    # that no page has to make it when it is read.
    from channels.services import identity_at_sign_in

    identity_at_sign_in(user=user)

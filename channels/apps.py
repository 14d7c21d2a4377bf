from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    # The label avoids any clash with the unrelated PyPI package "channels", which we never use.
    name = "channels"
    label = "delivery_channels"
    verbose_name = "Delivery channels"

    def ready(self) -> None:
        from channels import oauth  # noqa: F401 - connects the allauth signal receivers

from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = gettext_lazy("Bounce analytics")

    def ready(self) -> None:
        from accounts import home
        from analytics.home import home_tiles

        home.add_tiles(home_tiles)

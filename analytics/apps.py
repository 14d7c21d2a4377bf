from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Bounce analytics"

    def ready(self) -> None:
        from accounts import home
        from analytics.home import home_tiles

        home.add_tiles(home_tiles)

from django.apps import AppConfig


class BouncesConfig(AppConfig):
    name = "bounces"
    verbose_name = "Bounce tracking"
    default_auto_field = "django.db.models.BigAutoField"

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Tenants and users"

    def ready(self) -> None:
        from accounts import ratelimit

        ratelimit.install()

from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The embedded demo's commands (``bin/run``): ``seed_demo``, ``demo_smtp_server`` and
    ``send_due``. Each app seeds its own demo rows (its ``demo.py``); these commands sit on top of
    every app and put them together."""

    name = "demo"
    verbose_name = "Embedded demo"

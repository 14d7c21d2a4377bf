from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class ReportsConfig(AppConfig):
    """The analytics pages: template and campaign analytics, reasons and domains, the live feed.
    They read every feature app; nothing imports them. The tables they show stay in
    ``analytics``, the low layer that features write to."""

    name = "reports"
    verbose_name = gettext_lazy("Analytics pages")

"""English formats: a locale's formats win over the settings' own ``DATETIME_FORMAT`` and the
like, so the product's are set here. Templates write ``|date:"DATETIME_FORMAT"``."""

DATE_FORMAT = "M j, Y"  # Nov 26, 2026
TIME_FORMAT = "H:i"  # 09:24
DATETIME_FORMAT = "M j, Y, H:i"  # Nov 26, 2026, 09:24
SHORT_DATE_FORMAT = DATE_FORMAT
SHORT_DATETIME_FORMAT = DATETIME_FORMAT

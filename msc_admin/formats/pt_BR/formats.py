"""Brazilian Portuguese formats, the English ones' equivalents (``msc_admin/formats/en``):
"26 de nov. de 2026, 09:24". Numbers keep Django's own (1.234,5)."""

DATE_FORMAT = r"j \d\e b. \d\e Y"  # 26 de nov. de 2026
TIME_FORMAT = "H:i"  # 09:24
DATETIME_FORMAT = r"j \d\e b. \d\e Y, H:i"  # 26 de nov. de 2026, 09:24
SHORT_DATE_FORMAT = DATE_FORMAT
SHORT_DATETIME_FORMAT = DATETIME_FORMAT

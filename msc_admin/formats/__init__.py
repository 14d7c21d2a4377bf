"""The product's date and time formats (``FORMAT_MODULE_PATH``): one format for a date-time
everywhere in the UI, "Nov 26, 2026, 09:24"; ISO 8601 only in CSV and other machine output."""

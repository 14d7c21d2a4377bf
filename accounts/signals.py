"""What accounts tells the apps above it, which it never imports."""

from __future__ import annotations

from django.dispatch import Signal

# A person's name changed (``accounts.services.user_set_name``): ``user`` (the new name set)
# and ``before`` (their full name until now). Sent inside the change's transaction.
name_changed = Signal()

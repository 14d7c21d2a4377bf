"""What channels tells the apps above it, which it never imports."""

from __future__ import annotations

from django.dispatch import Signal

# A channel's sending limits may have changed (its settings, its trial flag, or the team's
# throttling): ``tenant_id``, and ``channel_ids`` (None: every channel of the tenant). Mail held
# by a limit is looked at again at once, as the limit that held it may be gone or higher now.
# Sent inside the change's transaction.
limits_changed = Signal()

# The team's receiving-domain caps changed: ``tenant_id``, and ``added`` (the new
# ``DomainCap``, or None when one was removed). Sent inside the change's transaction.
domain_caps_changed = Signal()

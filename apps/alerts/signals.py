"""Facts announced by alert services, after commit. The console (and later notifications) listen.

alert_changed(alert_id, merchant_id, tier, kind, status, action) — `merchant_id` is None for a
  platform-wide alert (a channel down); `action` is one of "raised", "repeated", "suppressed",
  "acked", "resolved", "escalated", "upgraded".
"""

from django.dispatch import Signal

alert_changed = Signal()

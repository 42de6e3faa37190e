"""Facts announced by refund services, after commit. Alerts, notifications and commissions listen.

refund_state_changed(refund_id, merchant_id, from_status, to_status, event_code, responsible_party)
refund_anomaly(refund_id, merchant_id, kind, detail) — e.g. "reversed_after_success",
  "amount_mismatch", "late_failure_after_success": things a human may need to see.
"""

from django.dispatch import Signal

refund_state_changed = Signal()
refund_anomaly = Signal()

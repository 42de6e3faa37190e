"""Facts announced by refund services. Alerts, notifications and commissions listen.

Sent after commit:

refund_state_changed(refund_id, merchant_id, from_status, to_status, event_code, responsible_party)
refund_anomaly(refund_id, merchant_id, kind, detail) — e.g. "reversed_after_success",
  "amount_mismatch", "late_failure_after_success": things a human may need to see.

Sent inside the transaction that writes the timeline event (a listener writes its own rows in the
same transaction — an outbox — and does no I/O; an exception aborts the change):
refund_event_recorded(refund, event) — every timeline event, with the locked refund instance.
"""

from django.dispatch import Signal

refund_state_changed = Signal()
refund_anomaly = Signal()
refund_event_recorded = Signal()

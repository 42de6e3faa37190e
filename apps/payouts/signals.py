"""Facts announced by payout services, after commit. The alerts and notifications apps listen;
payouts never calls them.

payout_state_changed(disbursement_id, kind, merchant_id, from_status, to_status, event_code,
  responsible_party) — every transition of a payout or withdrawal (`kind` says which).
payout_anomaly(disbursement_id, kind, merchant_id, anomaly, detail) — things a human may need to
  see: "duplicate_suspected" (held by the duplicate pre-check), "reversed" (paid, then returned by
  the bank), "amount_mismatch" (a channel reported another amount or currency),
  "late_failure_after_success", "insufficient_funds_at_submit", "recall_failed".

Sent inside the transaction that writes the timeline event (a listener writes its own rows in the
same transaction — an outbox — and does no I/O; an exception aborts the change):
payout_event_recorded(disbursement, event) — every timeline event, with the locked row.
"""

from django.dispatch import Signal

payout_state_changed = Signal()
payout_anomaly = Signal()
payout_event_recorded = Signal()

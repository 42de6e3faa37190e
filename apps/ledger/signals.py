"""Facts the ledger announces, sent after commit by `reconciliation_run`. `ledger` imports no other
app: the alerts app (a higher floor) listens and decides how to page.

Every payload carries `dedupe_key` = "reconciliation:<source>:<date>", the same for every re-run of
one day and source, so repeated runs (a re-run, a second beat) group into one alert.

reconciliation_completed: a run finished (clean or not).
    reconciliation_id, date (YYYY-MM-DD), source, version, status ("clean" | "mismatched"),
    severity ("P0" | "P1" | ""), counts {kind: n for the five kinds}, totals {currency: {...}},
    dedupe_key
reconciliation_mismatch: a finished run found anything but matches. The completed payload plus
    mismatches: [{kind, severity, reference, direction, currency, statement_amount,
    platform_amount, detail}] (at most MAX_SIGNAL_ITEMS, most severe first), mismatches_total
reconciliation_failed: the statement could not be read (the task retries with backoff).
    reconciliation_id, date, source, version, severity ("P1"), error, dedupe_key
"""

from django.dispatch import Signal

MAX_SIGNAL_ITEMS = 100

reconciliation_completed = Signal()
reconciliation_mismatch = Signal()
reconciliation_failed = Signal()

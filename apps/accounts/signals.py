"""Facts announced by accounts services, after commit. Refunds and payouts listen; accounts, the
lowest floor, never imports them.

account_unfrozen(freeze_id, merchant_id, customer_id, account_fingerprint) — a freeze was lifted:
  money it held may go on (each listener re-checks every other freeze before releasing anything).
  `customer_id` is None for an account freeze, `account_fingerprint` "" for a customer freeze.
"""

from django.dispatch import Signal

account_unfrozen = Signal()

"""Facts announced by order services. Commissions listen.

Sent inside the transaction that records the order and its ledger capture (a listener writes its
own rows in the same transaction and does no I/O; an exception aborts the order):

order_captured(order) — a paid order was recorded and its capture posted.
"""

from django.dispatch import Signal

order_captured = Signal()

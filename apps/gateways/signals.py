"""Facts announced by gateway services, after commit. The alerts app listens (gateways imports none
of its listeners: alerts sits floors above).

channel_health_changed(channel_code, old_state, new_state, reason, failure_rate, score, calls) — a
  channel's health state changed ("healthy" / "degraded" / "down"); sent once per change, never
  while the state stays the same. `new_state` "down" is the P0 "channel down", "degraded" a P1,
  "healthy" the all-clear. `reason` is "outage" or "failure_rate" (empty when healthy);
  `failure_rate` (0–1) and `calls` describe the window it was judged on, `score` is 0–100.
channel_failure_rate_rising(channel_code, failure_rate, days) — the daily failure rate rose
  CHANNEL_RISING_DAYS days in a row (P1: routing already prefers another channel). Sent once when
  the run starts, not again while it lasts. `days` lists the compared UTC days, oldest first, as
  {"date": "YYYY-MM-DD", "calls", "failures", "failure_rate"}; `failure_rate` is the last day's.
"""

from django.dispatch import Signal

channel_health_changed = Signal()
channel_failure_rate_rising = Signal()

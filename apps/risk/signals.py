"""Facts announced by the risk engine; the alerts issue and the apps owning reviewed objects listen.

risk_rules_hit(merchant_id, scope, subject_id, action, hits, shadow_hits) — after commit; hits
carry code, severity, action and whether they decided the outcome.

case_decided(case_id, merchant_id, subject_type, subject_id, decision, actor, note) — sent
synchronously, inside the deciding transaction, so the app owning the subject (refunds for
"refund") moves it atomically with the verdict. A receiver that handles the subject returns True
and records the verdict through `case_close` (which never sends this signal: no loop); a refusal
(ServiceError) rolls the whole decision back.
"""

from django.dispatch import Signal

risk_rules_hit = Signal()
case_decided = Signal()

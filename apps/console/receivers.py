"""Live alerts: push every alert change to the merchant's console group (after commit; the alerts
app sends `alert_changed` from an on_commit hook, so the row is visible to a page that reloads).
`publish` crosses processes: through Redis when configured, else through the database relay."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from apps.alerts.models import Alert
from apps.alerts.signals import alert_changed
from apps.common.live import publish
from apps.console.consumers import merchant_group

logger = logging.getLogger(__name__)


@receiver(alert_changed, dispatch_uid="console.alert_changed")
def push_alert(sender, *, alert_id, merchant_id, tier, kind, status, action, **kwargs) -> None:
    if merchant_id is None:
        return  # platform-wide: no merchant console shows it
    alert = Alert.objects.filter(pk=alert_id).only("summary", "subject_type", "subject_id", "occurrence_count").first()
    payload = {
        "type": "alert",
        "action": action,
        "id": alert_id,
        "severity": tier,
        "kind": kind,
        "status": status,
        "summary": alert.summary if alert else "",
        "subject": {"type": alert.subject_type, "id": alert.subject_id} if alert else None,
        "occurrence_count": alert.occurrence_count if alert else None,
    }
    try:
        publish(merchant_group(merchant_id), {"type": "console.event", "payload": payload})
    except Exception:
        logger.exception("console: could not push alert %s to merchant %s", alert_id, merchant_id)

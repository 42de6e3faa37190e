import logging

from django.db.models import F
from django.utils import timezone

from apps.common.models import WorkerHeartbeat

logger = logging.getLogger("refundguard.heartbeat")


def heartbeat_record(*, name: str, worker: str) -> WorkerHeartbeat:
    """Bump the named heartbeat; called by the worker when a beat-scheduled heartbeat arrives."""
    now = timezone.now()
    beat, created = WorkerHeartbeat.objects.get_or_create(
        name=name, defaults={"last_at": now, "count": 1, "worker": worker}
    )
    if not created:
        WorkerHeartbeat.objects.filter(pk=beat.pk).update(last_at=now, count=F("count") + 1, worker=worker)
        beat.refresh_from_db()
    logger.info("heartbeat delivered name=%s count=%s worker=%s", name, beat.count, worker)
    return beat

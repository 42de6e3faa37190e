from celery import shared_task

from apps.common.services import heartbeat_record


@shared_task(bind=True, ignore_result=True)
def heartbeat_task(self) -> None:
    heartbeat_record(name="beat", worker=self.request.hostname or "")


@shared_task(ignore_result=True)
def idempotency_purge_task() -> None:
    from apps.common.idempotency import idempotency_purge

    idempotency_purge()

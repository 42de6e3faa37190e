from celery import shared_task
from django.conf import settings

from apps.gateways.sandbox.bank import sandbox_bank_deliver_webhooks
from apps.gateways.services import channel_health_refresh


@shared_task(ignore_result=True)
def sandbox_bank_deliver_webhooks_task() -> int:
    """Beat, every 2 s: the sandbox bank sends the webhooks that are due. Safe to run twice at once."""
    if not settings.SANDBOX_BANK_ENABLED:
        return 0
    return sandbox_bank_deliver_webhooks()


@shared_task(ignore_result=True)
def channel_health_refresh_task() -> dict[str, str]:
    """Beat, every CHANNEL_HEALTH_REFRESH_SECONDS: channel health from recent calls. Safe to run twice at once."""
    return channel_health_refresh()

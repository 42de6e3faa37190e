from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from apps.common.models import WorkerHeartbeat


@require_GET
def healthz(request):
    """Liveness for load balancers and operators: database reachable, last worker heartbeat."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    beat = WorkerHeartbeat.objects.filter(name="beat").first()
    return JsonResponse(
        {
            "status": "ok",
            "database": connection.vendor,
            "last_heartbeat_at": beat.last_at.isoformat() if beat else None,
            "heartbeats": beat.count if beat else 0,
        }
    )

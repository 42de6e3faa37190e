from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET
from django.views.defaults import page_not_found

from apps.common.errors import error_body
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


def not_found(request, exception=None):
    """404s under /api/ (e.g. /api/v1/customers/abc) answer in the API's error shape, not HTML."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return page_not_found(request, exception)

"""The project's URLs plus views that fail on purpose (tests/common/test_json_errors.py)."""

from django.db import OperationalError
from django.http import HttpResponse, JsonResponse
from django.urls import path
from rest_framework.views import APIView

from refundguard import urls as project

SECRET = "password=hunter2 at db.internal"


def boom(request):
    raise RuntimeError(f"a bug that must not reach the client: {SECRET}")


def db_down(request):
    raise OperationalError(f"could not connect to server: {SECRET}")


class DRFBoom(APIView):
    authentication_classes = ()
    permission_classes = ()

    def get(self, request):
        raise RuntimeError(f"a bug in an API view: {SECRET}")


def publish(request):
    from apps.common.tasks import heartbeat_task

    heartbeat_task.delay()
    return HttpResponse(status=204)


def json_503(request):
    return JsonResponse({"error": {"code": "channel_misconfigured", "message": "Not now.", "fields": {}}}, status=503)


def html_page(request):
    return HttpResponse("<p>not JSON</p>", status=410)


urlpatterns = [
    path("api/v1/_boom", boom),
    path("api/v1/_db_down", db_down),
    path("api/v1/_drf_boom", DRFBoom.as_view()),
    path("webhooks/_boom", boom),
    path("console/_boom", boom),
    path("api/v1/_gone", html_page),
    path("api/v1/_publish", publish),
    path("webhooks/_json_503", json_503),
    *project.urlpatterns,
]
# Whatever error views the project declares (none: apps.common.middleware answers for the API).
handler404 = getattr(project, "handler404", None)
handler500 = getattr(project, "handler500", None)

"""WebSocket routes of every app, in one list."""

from django.urls import path

from apps.console.consumers import ConsoleConsumer
from apps.notifications.consumers import NotificationConsumer

websocket_urlpatterns = [
    path("ws/console/", ConsoleConsumer.as_asgi()),
    path("ws/r/w/<str:token>/", NotificationConsumer.as_asgi(), {"kind": "withdrawal"}),
    path("ws/r/<str:token>/", NotificationConsumer.as_asgi()),
    path("ws/notifications/", NotificationConsumer.as_asgi()),
]

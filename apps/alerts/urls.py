from django.urls import path

from apps.alerts import api

urlpatterns = [
    path("alerts", api.AlertListView.as_view(), name="alert-list"),
    path("alerts/<int:pk>", api.AlertDetailView.as_view(), name="alert-detail"),
    path("alerts/<int:pk>/ack", api.AlertAckView.as_view(), name="alert-ack"),
    path("alerts/<int:pk>/resolve", api.AlertResolveView.as_view(), name="alert-resolve"),
    path("silences", api.SilenceListCreateView.as_view(), name="silence-list"),
    path("silences/<int:pk>/expire", api.SilenceExpireView.as_view(), name="silence-expire"),
]

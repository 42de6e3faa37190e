"""Notification routes under /api/v1/ (the Twilio webhook lives in apps.notifications.urls)."""

from django.urls import path

from apps.common.routes import resource_paths
from apps.notifications import api

urlpatterns = [
    *resource_paths("notifications", "notification", api.NotificationListView, api.NotificationDetailView),
    path("customers/<str:external_id>/inbox", api.CustomerInboxView.as_view(), name="customer-inbox"),
    path("customers/<str:external_id>/inbox/read", api.CustomerInboxReadView.as_view(), name="customer-inbox-read"),
    path(
        "customers/<str:external_id>/notification-preferences",
        api.CustomerPreferenceView.as_view(),
        name="customer-notification-preferences",
    ),
]

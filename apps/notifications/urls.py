from django.urls import path

from apps.notifications import views

app_name = "notifications"
urlpatterns = [
    path("twilio/status/", views.twilio_status, name="twilio-status"),
]

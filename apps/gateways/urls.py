from django.urls import path

from apps.gateways import views

app_name = "gateways"

urlpatterns = [
    path("<slug:code>/", views.channel_webhook, name="channel-webhook"),
]

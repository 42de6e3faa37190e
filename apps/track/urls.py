from django.urls import path

from apps.track import views

app_name = "track"
urlpatterns = [path("<str:token>/", views.refund_progress, name="refund")]

from django.urls import path

from apps.console import views

app_name = "console"
urlpatterns = [path("", views.dashboard, name="dashboard")]

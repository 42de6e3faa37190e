from django.urls import path

from apps.risk import api

urlpatterns = [path("cases", api.CaseListView.as_view(), name="case-list")]

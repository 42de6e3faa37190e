from django.urls import path

from apps.commissions import api

urlpatterns = [
    path("commissions", api.CommissionListView.as_view(), name="commission-list"),
    path("commissions/<int:pk>", api.CommissionDetailView.as_view(), name="commission-detail"),
    path("commission-plans", api.CommissionPlanListCreateView.as_view(), name="commission-plan-list"),
    path("commission-plans/<int:pk>", api.CommissionPlanDetailView.as_view(), name="commission-plan-detail"),
]

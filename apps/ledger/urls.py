from django.urls import path

from apps.ledger import api

urlpatterns = [
    path("reconciliations", api.ReconciliationListCreateView.as_view(), name="reconciliation-list"),
    path("reconciliations/<int:pk>", api.ReconciliationDetailView.as_view(), name="reconciliation-detail"),
]

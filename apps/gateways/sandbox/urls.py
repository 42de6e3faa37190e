from django.urls import path

from apps.gateways.sandbox import views

app_name = "sandbox_bank"

urlpatterns = [
    path("transfers", views.transfers, name="transfers"),
    path("transfers/<str:request_id>", views.transfer_detail, name="transfer-detail"),
    path("transfers/<str:request_id>/recall", views.transfer_recall, name="transfer-recall"),
    path("accounts/verify", views.accounts_verify, name="accounts-verify"),
    path("outage", views.outage, name="outage"),
    path("statements", views.statements, name="statements"),
]

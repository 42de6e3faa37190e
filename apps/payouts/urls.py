from django.urls import path

from apps.payouts import api

urlpatterns = [
    path("payouts", api.PayoutListCreateView.as_view(), name="payout-list"),
    path("payouts/<int:pk>", api.PayoutDetailView.as_view(), name="payout-detail"),
    path("payouts/<int:pk>/approve", api.PayoutApproveView.as_view(), name="payout-approve"),
    path("payouts/<int:pk>/cancel", api.PayoutCancelView.as_view(), name="payout-cancel"),
    path("payouts/<int:pk>/release", api.PayoutReleaseView.as_view(), name="payout-release"),
    path("withdrawals", api.WithdrawalListCreateView.as_view(), name="withdrawal-list"),
    path("withdrawals/<int:pk>", api.WithdrawalDetailView.as_view(), name="withdrawal-detail"),
    path("withdrawals/<int:pk>/approve", api.WithdrawalApproveView.as_view(), name="withdrawal-approve"),
    path("withdrawals/<int:pk>/cancel", api.WithdrawalCancelView.as_view(), name="withdrawal-cancel"),
    path("withdrawals/<int:pk>/release", api.WithdrawalReleaseView.as_view(), name="withdrawal-release"),
    path("incidents", api.IncidentListCreateView.as_view(), name="incident-list"),
    path("incidents/<int:pk>", api.IncidentDetailView.as_view(), name="incident-detail"),
    path("incidents/<int:pk>/freeze", api.IncidentFreezeView.as_view(), name="incident-freeze"),
    path("incidents/<int:pk>/recall", api.IncidentRecallView.as_view(), name="incident-recall"),
    path("incidents/<int:pk>/negotiation", api.IncidentNegotiationView.as_view(), name="incident-negotiation"),
    path("incidents/<int:pk>/returns", api.IncidentReturnView.as_view(), name="incident-returns"),
    path("incidents/<int:pk>/escalate", api.IncidentEscalateView.as_view(), name="incident-escalate"),
    path("incidents/<int:pk>/resolve", api.IncidentResolveView.as_view(), name="incident-resolve"),
]

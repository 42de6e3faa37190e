from apps.common.routes import resource_paths
from apps.payouts import api

urlpatterns = [
    *resource_paths("payouts", "payout", api.PayoutListCreateView, api.PayoutDetailView, actions=api.PAYOUT_ACTIONS),
    *resource_paths(
        "withdrawals",
        "withdrawal",
        api.WithdrawalListCreateView,
        api.WithdrawalDetailView,
        actions=api.WITHDRAWAL_ACTIONS,
    ),
    *resource_paths(
        "incidents", "incident", api.IncidentListCreateView, api.IncidentDetailView, actions=api.INCIDENT_ACTIONS
    ),
]

from apps.common.routes import resource_paths
from apps.payouts import api

urlpatterns = [
    *resource_paths(
        "payouts",
        "payout",
        list_view=api.PayoutListCreateView,
        detail_view=api.PayoutDetailView,
        actions={"approve": api.PayoutApproveView, "cancel": api.PayoutCancelView, "release": api.PayoutReleaseView},
    ),
    *resource_paths(
        "withdrawals",
        "withdrawal",
        list_view=api.WithdrawalListCreateView,
        detail_view=api.WithdrawalDetailView,
        actions={
            "approve": api.WithdrawalApproveView,
            "cancel": api.WithdrawalCancelView,
            "release": api.WithdrawalReleaseView,
        },
    ),
    *resource_paths(
        "incidents",
        "incident",
        list_view=api.IncidentListCreateView,
        detail_view=api.IncidentDetailView,
        actions={
            "freeze": api.IncidentFreezeView,
            "recall": api.IncidentRecallView,
            "negotiation": api.IncidentNegotiationView,
            "returns": api.IncidentReturnView,
            "escalate": api.IncidentEscalateView,
            "resolve": api.IncidentResolveView,
        },
    ),
]

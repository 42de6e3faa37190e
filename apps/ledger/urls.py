from apps.common.routes import resource_paths
from apps.ledger import api

urlpatterns = resource_paths(
    "reconciliations",
    "reconciliation",
    list_view=api.ReconciliationListCreateView,
    detail_view=api.ReconciliationDetailView,
)

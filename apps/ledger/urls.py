from apps.common.routes import resource_paths
from apps.ledger import api

urlpatterns = resource_paths(
    "reconciliations", "reconciliation", api.ReconciliationListCreateView, api.ReconciliationDetailView
)

from apps.commissions import api
from apps.common.routes import resource_paths

urlpatterns = [
    *resource_paths("commissions", "commission", api.CommissionListView, api.CommissionDetailView),
    *resource_paths(
        "commission-plans", "commission-plan", api.CommissionPlanListCreateView, api.CommissionPlanDetailView
    ),
]

from apps.commissions import api
from apps.common.routes import resource_paths

urlpatterns = [
    *resource_paths(
        "commissions", "commission", list_view=api.CommissionListView, detail_view=api.CommissionDetailView
    ),
    *resource_paths(
        "commission-plans",
        "commission-plan",
        list_view=api.CommissionPlanListCreateView,
        detail_view=api.CommissionPlanDetailView,
    ),
]

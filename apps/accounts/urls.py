from apps.accounts import api
from apps.common.routes import resource_paths

urlpatterns = [
    *resource_paths("customers", "customer", list_view=api.CustomerListCreateView, detail_view=api.CustomerDetailView),
    *resource_paths(
        "freezes",
        "freeze",
        list_view=api.FreezeListView,
        detail_view=api.FreezeDetailView,
        actions={"lift": api.FreezeLiftView},
    ),
]

from apps.accounts import api
from apps.common.routes import resource_paths

urlpatterns = [
    *resource_paths("customers", "customer", api.CustomerListCreateView, api.CustomerDetailView),
    *resource_paths("freezes", "freeze", api.FreezeListView, api.FreezeDetailView, actions=[api.FreezeLiftView]),
]

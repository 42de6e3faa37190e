from apps.common.routes import resource_paths
from apps.orders import api

urlpatterns = [
    *resource_paths("products", "product", list_view=api.ProductListCreateView, detail_view=api.ProductDetailView),
    *resource_paths(
        "orders",
        "order",
        list_view=api.OrderListCreateView,
        detail_view=api.OrderDetailView,
        actions={"usage": api.OrderUsageView},
    ),
]

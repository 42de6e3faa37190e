from apps.common.routes import resource_paths
from apps.orders import api

urlpatterns = [
    *resource_paths("products", "product", api.ProductListCreateView, api.ProductDetailView),
    *resource_paths("orders", "order", api.OrderListCreateView, api.OrderDetailView, actions=[api.OrderUsageView]),
]

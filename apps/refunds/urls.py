from django.urls import path

from apps.common.routes import resource_paths
from apps.refunds import api

urlpatterns = [
    *resource_paths("refunds", "refund", api.RefundListCreateView, api.RefundDetailView, actions=api.REFUND_ACTIONS),
    path("products/<int:pk>/refund-stats", api.ProductRefundStatsView.as_view(), name="product-refund-stats"),
]

from django.urls import path

from apps.common.routes import resource_paths
from apps.refunds import api

urlpatterns = [
    *resource_paths(
        "refunds",
        "refund",
        list_view=api.RefundListCreateView,
        detail_view=api.RefundDetailView,
        actions={
            "events": api.RefundEventsView,
            "cancel": api.RefundCancelView,
            "approve": api.RefundApproveView,
            "reject": api.RefundRejectView,
        },
    ),
    path("products/<int:pk>/refund-stats", api.ProductRefundStatsView.as_view(), name="product-refund-stats"),
]

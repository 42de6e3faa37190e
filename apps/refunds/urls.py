from django.urls import path

from apps.refunds import api

urlpatterns = [
    path("refunds", api.RefundListCreateView.as_view(), name="refund-list"),
    path("refunds/<int:pk>", api.RefundDetailView.as_view(), name="refund-detail"),
    path("refunds/<int:pk>/events", api.RefundEventsView.as_view(), name="refund-events"),
    path("refunds/<int:pk>/cancel", api.RefundCancelView.as_view(), name="refund-cancel"),
    path("refunds/<int:pk>/approve", api.RefundApproveView.as_view(), name="refund-approve"),
    path("refunds/<int:pk>/reject", api.RefundRejectView.as_view(), name="refund-reject"),
    path("products/<int:pk>/refund-stats", api.ProductRefundStatsView.as_view(), name="product-refund-stats"),
]

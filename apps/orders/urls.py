from django.urls import path

from apps.orders import api

urlpatterns = [
    path("products", api.ProductListCreateView.as_view(), name="product-list"),
    path("products/<int:pk>", api.ProductDetailView.as_view(), name="product-detail"),
    path("orders", api.OrderListCreateView.as_view(), name="order-list"),
    path("orders/<int:pk>", api.OrderDetailView.as_view(), name="order-detail"),
    path("orders/<int:pk>/usage", api.OrderUsageView.as_view(), name="order-usage"),
]

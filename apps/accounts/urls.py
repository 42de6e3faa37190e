from django.urls import path

from apps.accounts import api

urlpatterns = [
    path("customers", api.CustomerListCreateView.as_view(), name="customer-list"),
    path("customers/<int:pk>", api.CustomerDetailView.as_view(), name="customer-detail"),
]

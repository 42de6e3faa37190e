from django.urls import path

from apps.accounts import api

urlpatterns = [
    path("customers", api.CustomerListCreateView.as_view(), name="customer-list"),
    path("customers/<int:pk>", api.CustomerDetailView.as_view(), name="customer-detail"),
    path("freezes", api.FreezeListView.as_view(), name="freeze-list"),
    path("freezes/<int:pk>", api.FreezeDetailView.as_view(), name="freeze-detail"),
    path("freezes/<int:pk>/lift", api.FreezeLiftView.as_view(), name="freeze-lift"),
]

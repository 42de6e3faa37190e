from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.common.views import healthz

api_v1 = [
    path("", include("apps.accounts.urls")),
    path("", include("apps.orders.urls")),
    path("", include("apps.refunds.urls")),
    path("", include("apps.payouts.urls")),
    path("", include("apps.risk.urls")),
    path("", include("apps.ledger.urls")),
    path("", include("apps.alerts.urls")),
    path("", include("apps.commissions.urls")),
    path("", include("apps.notifications.api_urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="schema", template_name="api_docs.html"),
        name="swagger-ui",
    ),
    path("api/v1/", include(api_v1)),
    path("console/", include("apps.console.urls")),
    path("r/", include("apps.track.urls")),
    path("healthz", healthz, name="healthz"),
    path("webhooks/channels/", include("apps.gateways.urls")),
    path("webhooks/", include("apps.notifications.urls")),
]

if settings.SANDBOX_BANK_ENABLED:
    urlpatterns.append(path("sandbox/bank/", include("apps.gateways.sandbox.urls")))

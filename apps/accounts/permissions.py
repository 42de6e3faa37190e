from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission

from apps.common.tenancy import request_merchant


class IsMerchantMember(BasePermission):
    """Authenticated as an API key or as staff of one merchant; platform operators use the admin."""

    message = _("Authenticate with a merchant API key.")

    def has_permission(self, request, view):
        user = request.user
        return bool(user is not None and user.is_authenticated and request_merchant(request) is not None)


class IsPlatformOperator(BasePermission):
    """A signed-in platform operator: staff with no merchant. API keys always act for one merchant,
    so platform-wide data (reconciliations) is never reachable with one."""

    message = _("Platform data: sign in as a platform operator.")

    def has_permission(self, request, view):
        user = request.user
        return bool(
            user is not None
            and user.is_authenticated
            and getattr(user, "is_staff", False)
            and getattr(user, "merchant_id", None) is None
            and request_merchant(request) is None
        )

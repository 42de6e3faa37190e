"""Building blocks for merchant-scoped API views: every query starts from the caller's merchant."""

from __future__ import annotations

from rest_framework.views import APIView

from apps.common.tenancy import request_merchant


class MerchantAPIView(APIView):
    """Objects of another merchant do not exist for the caller: lookups 404, never 403."""

    @property
    def merchant(self):
        return request_merchant(self.request)

    def paginated(self, queryset, serializer_class):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)

"""Building blocks for merchant-scoped API views: every query starts from the caller's merchant."""

from __future__ import annotations

from collections.abc import Callable

from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.idempotency import idempotent
from apps.common.tenancy import request_merchant


class MerchantAPIView(APIView):
    """Objects of another merchant do not exist for the caller: lookups 404, never 403."""

    @property
    def merchant(self):
        return request_merchant(self.request)

    @property
    def actor(self) -> str:
        """Who acts, as timelines and audit rows record it: the staff member or the API key's user."""
        return self.request.user.get_username()

    def body(self, serializer_class: type[serializers.Serializer]) -> dict:
        """The request body validated by `serializer_class`; an invalid one answers 400 (or 422 for a
        rule the schema cannot state) before any service runs."""
        data = serializer_class(data=self.request.data)
        data.is_valid(raise_exception=True)
        return dict(data.validated_data)

    def idempotent(self, *, endpoint: str, handler: Callable[[], Response]) -> Response:
        """Run `handler` once per Idempotency-Key of this merchant on `endpoint`; a repeat gets the
        first response back (apps.common.idempotency)."""
        return idempotent(
            request=self.request, scope=f"merchant:{self.merchant.pk}", endpoint=endpoint, handler=handler
        )

    def paginated(self, queryset, serializer_class):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)

"""Building blocks for merchant-scoped API views: every query starts from the caller's merchant."""

from __future__ import annotations

from rest_framework.exceptions import ValidationError
from rest_framework.views import APIView

from apps.common.fields import SingleLineCharField
from apps.common.tenancy import request_merchant


class MerchantAPIView(APIView):
    """Objects of another merchant do not exist for the caller: lookups 404, never 403."""

    @property
    def merchant(self):
        return request_merchant(self.request)

    def query_text(self, name: str, *, max_length: int = 100) -> str | None:
        """A single-line filter from the query string (None when absent or blank), or a 400.

        Filters reach SQL as parameters; PostgreSQL refuses text containing NUL, which would
        otherwise surface as a 500.
        """
        raw = self.request.query_params.get(name)
        if raw is None:
            return None
        try:
            value = SingleLineCharField(max_length=max_length, allow_blank=True).run_validation(raw)
        except ValidationError as exc:
            raise ValidationError({name: exc.detail}) from None
        return value or None

    def query_choice(self, name: str, choices) -> str | None:
        """`query_text`, and one of `choices` (a 400 naming them otherwise)."""
        value = self.query_text(name, max_length=32)
        if value is not None and value not in choices:
            raise ValidationError({name: [f"Must be one of: {', '.join(choices)}."]})
        return value

    def paginated(self, queryset, serializer_class):
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, self.request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)

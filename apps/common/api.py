"""Building blocks for merchant-scoped API views: every query starts from the caller's merchant."""

from __future__ import annotations

from collections.abc import Callable

from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.common.idempotency import idempotent
from apps.common.schema import ApiAutoSchema
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


# The classes below carry comments, not docstrings: the schema shows the nearest class docstring as
# the description of every operation that has none of its own.


# One row of the merchant's, by primary key: `get_object` loads it (404 for another merchant's),
# `respond` answers with it as `response_serializer` shows it, re-read by `get_result`.
class ObjectView(MerchantAPIView):
    response_serializer: type[serializers.Serializer]

    def get_object(self, pk: int):
        raise NotImplementedError

    def get_result(self, pk: int):
        return self.get_object(pk)

    def respond(self, pk: int, *, status_code: int = status.HTTP_200_OK) -> Response:
        return Response(self.response_serializer(self.get_result(pk)).data, status=status_code)


class _ObjectActionSchema(ApiAutoSchema):
    def get_request_serializer(self):
        return self.view.request_serializer

    def get_response_serializers(self):
        return self.view.response_serializer


# A POST action on one row (`<collection>/<pk>/<action_name>`, apps.common.routes): load the row,
# read the body `request_serializer` declares (None: no body), let `act` call the owning app's
# service (usually `step`), answer with the row. The schema documents those two serializers.
class ObjectActionView(ObjectView):
    action_name: str
    request_serializer: type[serializers.Serializer] | None = None
    step: Callable[..., object]
    schema = _ObjectActionSchema()

    def act(self, target) -> None:
        raise NotImplementedError

    def fields(self) -> dict:
        """The validated body as keyword arguments for the service; an optional text field left out
        (a note) is passed as ""."""
        if self.request_serializer is None:
            return {}
        declared = self.request_serializer().fields.items()
        blank = {
            name: "" for name, field in declared if isinstance(field, serializers.CharField) and not field.required
        }
        return {**blank, **self.body(self.request_serializer)}

    def post(self, request, pk: int):
        self.act(self.get_object(pk))
        return self.respond(pk)

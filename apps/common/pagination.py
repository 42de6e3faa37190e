from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination


class StrictLimitOffsetPagination(LimitOffsetPagination):
    """`limit` in 1..200 and `offset` ≥ 0, or a 400 — never a silent clamp."""

    default_limit = 50
    max_limit = 200

    def _param(self, request, name: str, default: int, low: int, high: int | None) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise ValidationError({name: [_("Must be an integer.")]}) from None
        if value < low or (high is not None and value > high):
            if high is None:
                message = _("Must be at least {low}.").format(low=low)
            else:
                message = _("Must be between {low} and {high}.").format(low=low, high=high)
            raise ValidationError({name: [message]})
        return value

    def get_limit(self, request):
        return self._param(request, self.limit_query_param, self.default_limit, 1, self.max_limit)

    def get_offset(self, request):
        return self._param(request, self.offset_query_param, 0, 0, None)

    def get_schema_operation_parameters(self, view):
        """`limit` and `offset` with the bounds enforced above."""
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.limit_query_param: {"minimum": 1, "maximum": self.max_limit, "default": self.default_limit},
            self.offset_query_param: {"minimum": 0, "default": 0},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters

"""How the OpenAPI schema describes what the server really does (drf-spectacular's AutoSchema).

One home for the rules every operation shares, so no view has to repeat them in a decorator:
- the error responses an operation can give, each in the API's error shape (`ErrorSerializer`);
- response fields whose column may hold NULL are `nullable`, and read-only fields of blank text
  columns allow `""`;
- request bodies refuse undeclared properties (`additionalProperties: false`), as
  `StrictSerializerMixin` does on the server;
- text fields and string query filters carry the character rules the server applies
  (`SingleLineCharField`, `MultiLineCharField`, `MerchantAPIView.query_text`), required text
  must hold more than whitespace (DRF trims it), and non-empty lists and maps say so.
Read by REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] and SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"].
"""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from apps.common.fields import MultiLineCharField, SingleLineCharField, text_pattern

IDEMPOTENCY_HEADER_NAME = "Idempotency-Key"  # apps.common.idempotency.idempotency_key_parameter
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


class _ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `validation_error`.")
    message = serializers.CharField(help_text="What went wrong, in the request's language.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per invalid field (`a.b` for nested ones); empty when no field is at fault.",
    )


class ErrorSerializer(serializers.Serializer):
    """The API's one error shape (apps.common.errors.error_body)."""

    error = _ErrorDetailSerializer()


_SHAPED = {"enum", "format", "pattern", "$ref", "oneOf", "allOf"}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer", "minimum": 0}, "description": "Seconds to wait."}}

# Why each status can happen; which operations get which is decided in `_error_statuses`.
ERROR_DESCRIPTIONS = {
    400: "The request is malformed or a field is invalid; nothing was written.",
    401: "No API key, or one that is unknown or revoked.",
    403: "The key's merchant or role may not do this.",
    404: "No such object for this merchant.",
    409: "The object's state does not allow this, or a request with this Idempotency-Key is still running.",
    413: "The request body is larger than the server accepts.",
    415: "The request body is not JSON.",
    422: (
        "Well-formed, but refused by a rule the schema cannot state (an unknown reference, a cross-field "
        "rule, a business limit), or an Idempotency-Key used with a different request; nothing was written."
    ),
    429: "Too many requests; retry after `Retry-After` seconds.",
    503: "A backing service is briefly unavailable; retry after `Retry-After` seconds.",
}


class ApiAutoSchema(AutoSchema):
    def _error_statuses(self) -> list[int]:
        statuses = [400, 401, 403, 429, 503]
        if "{" in self.path:
            statuses.append(404)
        if self.method in WRITE_METHODS:
            statuses.append(409)
        if self.method in ("POST", "PUT", "PATCH"):
            statuses += [413, 415, 422]
        elif any(
            getattr(parameter, "name", None) == IDEMPOTENCY_HEADER_NAME for parameter in self.get_override_parameters()
        ):
            statuses.append(422)
        return sorted(statuses)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for status in self._error_statuses():
            if str(status) in responses:
                continue
            response = self._get_response_for_code(
                OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[status]), str(status)
            )
            if status in (429, 503):
                response["headers"] = {**_RETRY_AFTER, **response.get("headers", {})}
            responses[str(status)] = response
        return responses

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        model_field = _model_field(field) if direction == "response" else None
        if getattr(model_field, "null", False):
            schema["nullable"] = True
        return schema

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        query = [p for p in (operation or {}).get("parameters", []) if p["in"] == "query"]
        for parameter in query:
            schema = parameter.get("schema", {})
            if schema.get("type") == "string" and not schema.keys() & _SHAPED:
                # MerchantAPIView.query_text: one line of at most 100 characters unless a view says less.
                schema["pattern"] = text_pattern(max_length=schema.pop("maxLength", 100))
        if query:
            # gunicorn refuses a request line over `limit_request_line` before Django sees it, as text.
            operation["responses"]["414"] = {"description": "The URL is longer than the server reads."}
        return operation

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        is_text = isinstance(field, (SingleLineCharField, MultiLineCharField))
        if is_text and not field.read_only and "pattern" not in schema:
            schema.pop("minLength", None)
            schema["pattern"] = text_pattern(
                multi_line=isinstance(field, MultiLineCharField),
                allow_blank=field.allow_blank,
                max_length=schema.pop("maxLength", None),
            )
        if isinstance(field, serializers.IPAddressField) and not field.read_only and field.protocol == "both":
            schema["anyOf"] = [{"format": "ipv4"}, {"format": "ipv6"}]
        if isinstance(field, serializers.TimeField) and field.input_formats == ["%H:%M"]:
            schema.pop("format", None)
            schema["pattern"] = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
        if isinstance(field, serializers.ListField) and not field.allow_empty and not field.read_only:
            schema.setdefault("minItems", 1)
        if isinstance(field, serializers.DictField) and not field.allow_empty and not field.read_only:
            schema.setdefault("minProperties", 1)
        # After the validators, which would put a `format` back on the schema.
        model_field = _model_field(field) if field.read_only else None
        if getattr(model_field, "blank", False):
            _allow_blank(schema)


def _model_field(field):
    """The model column a ModelSerializer field reads, or None (computed or nested fields)."""
    parent = getattr(field, "parent", None)
    model = getattr(getattr(parent, "Meta", None), "model", None)
    source = getattr(field, "source", None)
    if model is None or not source or "." in source or source == "*":
        return None
    try:
        return model._meta.get_field(source)
    except FieldDoesNotExist:
        return None


def _allow_blank(schema: dict) -> None:
    """A read-only field of a blank text column may be "": DRF drops `allow_blank` from read-only
    fields, so a blank choice column (`responsible_party`) or email would be documented as never empty."""
    if "enum" in schema and "" not in schema["enum"]:
        schema["enum"] = [*schema["enum"], ""]
    elif "$ref" in schema:
        schema["oneOf"] = [{"$ref": schema.pop("$ref")}, {"type": "string", "enum": [""]}]
    elif schema.get("type") == "string" and "format" in schema:
        schema["oneOf"] = [{"type": "string", "format": schema.pop("format")}, {"type": "string", "maxLength": 0}]
        schema.pop("type")


def refuse_unknown_properties(result, generator, request, public):
    """Postprocessing hook: request bodies are closed objects (StrictSerializerMixin refuses the rest)."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object" and "properties" in component:
            component.setdefault("additionalProperties", False)
    return result

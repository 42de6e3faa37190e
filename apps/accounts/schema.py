"""OpenAPI description of API-key auth (imported by AccountsConfig.ready so drf-spectacular finds it)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "Merchant API key: `Authorization: Bearer rg_…`"}

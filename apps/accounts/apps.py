from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Merchants, staff and customers"

    def ready(self) -> None:
        from apps.accounts import schema  # noqa: F401  (registers the OpenAPI auth extension)
        from apps.accounts.models import ApiKey, Merchant
        from apps.accounts.services import API_KEYS
        from apps.common.caching import changed_on_save

        # A key's or merchant's edit (revocation in the admin, deactivation) reaches every process's
        # copy of the API keys (apps.accounts.services.api_key_authenticate).
        changed_on_save(ApiKey, API_KEYS)
        changed_on_save(Merchant, API_KEYS)

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class LedgerConfig(AppConfig):
    name = "apps.ledger"
    label = "ledger"
    verbose_name = "Double-entry ledger"

    def ready(self) -> None:
        from apps.ledger.services import ledger_account_cache_clear

        # A migrate or flush may recreate the tables under a running process: drop cached ids.
        post_migrate.connect(ledger_account_cache_clear, dispatch_uid="ledger.account_cache_clear")

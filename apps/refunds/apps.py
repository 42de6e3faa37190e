from django.apps import AppConfig


class RefundsConfig(AppConfig):
    name = "apps.refunds"
    verbose_name = "Refunds"

    def ready(self) -> None:
        from apps.refunds import receivers, routing  # noqa: F401  (signal receivers)
        from apps.refunds.services import REFUNDS
        from apps.transfers.services import transfer_kind_register

        transfer_kind_register(REFUNDS)

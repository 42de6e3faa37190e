from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    """Payouts and withdrawals: one transfer kind for the kernel, their statements for reconciliation."""

    name = "apps.payouts"
    verbose_name = "Payouts and withdrawals"

    def ready(self) -> None:
        from apps.payouts.services import DISBURSEMENTS
        from apps.payouts.statement_sources import register_channel_statement_sources
        from apps.transfers.services import transfer_kind_register

        transfer_kind_register(DISBURSEMENTS)
        register_channel_statement_sources()

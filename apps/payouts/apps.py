from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    name = "apps.payouts"
    label = "payouts"
    verbose_name = "Payouts and withdrawals"

    def ready(self) -> None:
        from apps.gateways import registry
        from apps.payouts import receivers  # noqa: F401  (signal receivers)
        from apps.payouts.services import payout_apply_channel_result
        from apps.payouts.statement_sources import register_channel_statement_sources

        registry.register("payout", payout_apply_channel_result)
        registry.register("withdrawal", payout_apply_channel_result)
        register_channel_statement_sources()

from django.apps import AppConfig


class RefundsConfig(AppConfig):
    name = "apps.refunds"
    label = "refunds"
    verbose_name = "Refunds"

    def ready(self) -> None:
        from apps.gateways import registry
        from apps.refunds import receivers, routing  # noqa: F401  (signal receivers)
        from apps.refunds.services import refund_apply_channel_result

        registry.register("refund", refund_apply_channel_result)

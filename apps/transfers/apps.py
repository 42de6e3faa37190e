from django.apps import AppConfig


class TransfersConfig(AppConfig):
    name = "apps.transfers"
    label = "transfers"
    verbose_name = "Outbound transfers"

    def ready(self) -> None:
        from apps.transfers import receivers  # noqa: F401  (signal receivers)

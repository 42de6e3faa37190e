from django.apps import AppConfig


class RiskConfig(AppConfig):
    name = "apps.risk"
    label = "risk"
    verbose_name = "Risk and review"

    def ready(self) -> None:
        from apps.risk import caching

        caching.connect_signals()

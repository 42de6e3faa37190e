from django.apps import AppConfig


class CommissionsConfig(AppConfig):
    name = "apps.commissions"
    label = "commissions"
    verbose_name = "Commissions"

    def ready(self) -> None:
        from apps.commissions import receivers  # noqa: F401  (signal receivers)

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class NotificationsConfig(AppConfig):
    name = "apps.notifications"
    label = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from apps.notifications import receivers  # noqa: F401  (signal receivers)
        from apps.notifications.defaults import install_default_templates

        post_migrate.connect(install_default_templates, sender=self, dispatch_uid="notifications.default_templates")

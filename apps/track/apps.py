from django.apps import AppConfig


class TrackConfig(AppConfig):
    name = "apps.track"
    label = "track"
    verbose_name = "Customer progress pages"

from apps.alerts import api
from apps.common.routes import resource_paths

urlpatterns = [
    *resource_paths(
        "alerts", "alert", api.AlertListView, api.AlertDetailView, actions=[api.AlertAckView, api.AlertResolveView]
    ),
    *resource_paths("silences", "silence", api.SilenceListCreateView, actions=[api.SilenceExpireView]),
]

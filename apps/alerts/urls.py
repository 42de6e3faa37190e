from apps.alerts import api
from apps.common.routes import resource_paths

urlpatterns = [
    *resource_paths(
        "alerts",
        "alert",
        list_view=api.AlertListView,
        detail_view=api.AlertDetailView,
        actions={"ack": api.AlertAckView, "resolve": api.AlertResolveView},
    ),
    *resource_paths(
        "silences", "silence", list_view=api.SilenceListCreateView, actions={"expire": api.SilenceExpireView}
    ),
]

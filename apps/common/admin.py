from django.contrib import admin

from apps.common.models import WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("name", "last_at", "count", "worker")
    readonly_fields = ("name", "last_at", "count", "worker")

    def has_add_permission(self, request):
        return False

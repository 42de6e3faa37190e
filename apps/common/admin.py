from collections.abc import Callable, Iterable

from django.contrib import admin, messages

from apps.common.errors import ServiceError
from apps.common.models import AuditEntry, PeriodicRun, WorkerHeartbeat


def act_on_each(modeladmin: admin.ModelAdmin, request, rows: Iterable, action: Callable, done: str) -> None:
    """An admin action over the selected rows: `action` (a call to the owning app's service) runs for
    each row on its own, a row the service refuses is reported by name with its message, and the
    rows done are counted ("3 approved.")."""
    ok = 0
    for row in rows:
        try:
            action(row)
            ok += 1
        except ServiceError as exc:
            modeladmin.message_user(request, f"{row}: {exc.message}", level=messages.ERROR)
    if ok:
        modeladmin.message_user(request, f"{ok} {done}.", level=messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows only services write (events, deliveries, audit, provider reports): operators read them
    in the admin and can never add, change or delete one."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ServiceActionsAdmin(admin.ModelAdmin):
    """Rows that move only through their app's services (a state machine with its timeline): every
    field is shown read-only, nothing is added or deleted here, and an operator acts on a row only
    through admin actions that call those services."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    """A service-written child table (a timeline, pre-checks, approvals) shown on its parent's page:
    nothing added, changed or removed. `fields` names the columns shown, all of them read-only."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields or super().get_readonly_fields(request, obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("name", "last_at", "count", "worker")
    readonly_fields = ("name", "last_at", "count", "worker")

    def has_add_permission(self, request):
        return False


@admin.register(PeriodicRun)
class PeriodicRunAdmin(ReadOnlyAdmin):
    list_display = ("job", "window_start", "created_at", "result")
    list_filter = ("job",)
    readonly_fields = [f.name for f in PeriodicRun._meta.fields]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """The audit log, newest first; append-only (the database refuses changes on PostgreSQL)."""

    list_display = ("created_at", "action", "actor", "actor_kind", "target_type", "target_id", "merchant_id", "ip")
    list_filter = ("action", "actor_kind", "target_type")
    search_fields = ("actor", "target_id", "=merchant_id")
    ordering = ("-created_at", "-id")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEntry._meta.fields]

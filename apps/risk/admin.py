from django.contrib import admin

from apps.risk.models import Case


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("id", "merchant", "subject_type", "subject_id", "status", "assignee", "decision", "sla_due_at")
    list_filter = ("status", "subject_type", "merchant")
    readonly_fields = ("subject_type", "subject_id", "decision", "decided_by", "decided_at", "created_at")

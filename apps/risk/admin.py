from django import forms
from django.contrib import admin

from apps.common.admin import ReadOnlyAdmin
from apps.risk.engine import ExpressionError, compile_expression
from apps.risk.models import (
    Case,
    CaseNote,
    ClusterMember,
    ListEntry,
    MerchantBaseline,
    Observation,
    RiskModel,
    Rule,
    RuleHit,
    RuleVersion,
)
from apps.risk.rules import rule_create, rule_update


class CaseNoteInline(admin.TabularInline):
    model = CaseNote
    extra = 0
    readonly_fields = ("author", "text", "created_at")

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("id", "merchant", "subject_type", "subject_id", "status", "assignee", "decision", "sla_due_at")
    list_filter = ("status", "subject_type", "merchant")
    readonly_fields = ("subject_type", "subject_id", "decision", "decided_by", "decided_at", "created_at")
    inlines = (CaseNoteInline,)


class RuleVersionInline(admin.TabularInline):
    model = RuleVersion
    extra = 0
    can_delete = False
    fields = ("version", "expression", "action", "mode", "priority", "severity", "score_modifier", "changed_by")
    readonly_fields = fields
    ordering = ("-version",)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


_RULE_FIELDS = (
    "code",
    "name",
    "description",
    "scope",
    "expression",
    "action",
    "severity",
    "score_modifier",
    "priority",
    "mode",
)


class RuleAdminForm(forms.ModelForm):
    class Meta:
        model = Rule
        fields = ("merchant", *_RULE_FIELDS)

    def clean_expression(self):
        try:
            compile_expression(self.cleaned_data["expression"])
        except ExpressionError as exc:
            raise forms.ValidationError(str(exc)) from None
        return self.cleaned_data["expression"]


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    """Edits go through rule_create / rule_update so the expression is checked and versioned."""

    form = RuleAdminForm

    list_display = (
        "code",
        "merchant",
        "scope",
        "action",
        "severity",
        "priority",
        "mode",
        "version",
        "updated_at",
        "retired_at",
    )
    list_filter = ("scope", "mode", "action", "merchant", ("retired_at", admin.EmptyFieldListFilter))
    search_fields = ("code", "name", "expression")
    readonly_fields = ("version", "updated_by", "updated_at", "created_at", "retired_at", "retired_by")
    inlines = (RuleVersionInline,)

    def has_change_permission(self, request, obj=None):
        # A retired rule (DELETE /api/v1/rules/{id}) is history: shown, never edited.
        if obj is not None and obj.retired_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data}
        actor = request.user.get_username()
        if change:
            rule_update(rule=Rule.objects.get(pk=obj.pk), actor=actor, **fields)
            obj.refresh_from_db()
        else:
            values = {name: form.cleaned_data[name] for name in _RULE_FIELDS if name in form.cleaned_data}
            created = rule_create(merchant=form.cleaned_data.get("merchant"), actor=actor, **values)
            obj.pk = created.pk
            obj.refresh_from_db()

    def has_delete_permission(self, request, obj=None):
        # Hits refer to rules: disable a rule instead of deleting it.
        return False


@admin.register(RuleHit)
class RuleHitAdmin(ReadOnlyAdmin):
    list_display = ("id", "rule", "rule_version", "merchant", "mode", "action", "decisive", "created_at")
    list_filter = ("mode", "action", "decisive", "merchant")
    raw_id_fields = ("observation",)


@admin.register(Observation)
class ObservationAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "merchant",
        "scope",
        "subject_id",
        "customer_id",
        "amount",
        "currency",
        "action",
        "created_at",
    )
    list_filter = ("scope", "action", "merchant")


@admin.register(ListEntry)
class ListEntryAdmin(admin.ModelAdmin):
    list_display = ("id", "merchant", "list_type", "kind", "display", "reason", "expires_at", "created_by")
    list_filter = ("list_type", "kind", "merchant")
    search_fields = ("display", "reason")
    readonly_fields = ("merchant", "list_type", "kind", "value", "display", "created_by", "created_at")

    def has_add_permission(self, request):
        # Entries arrive through the API, which normalises values and fingerprints account numbers.
        return False


@admin.register(ClusterMember)
class ClusterMemberAdmin(ReadOnlyAdmin):
    list_display = ("customer_id", "root_id", "merchant")
    list_filter = ("merchant",)


@admin.register(RiskModel)
class RiskModelAdmin(ReadOnlyAdmin):
    list_display = ("version", "algorithm", "samples", "is_active", "trained_at")
    exclude = ("blob",)


@admin.register(MerchantBaseline)
class MerchantBaselineAdmin(ReadOnlyAdmin):
    list_display = ("merchant", "metric", "median", "mad", "samples", "computed_at")
    list_filter = ("metric",)

"""Risk API: rules (with versions, statistics and back-tests), the review queue, allow/block lists.

Thin views: parse, call one service or selector, serialize. Everything is the caller's merchant's;
platform rules are listed and readable but not writable by merchants (403 with a clear error).
"""

from __future__ import annotations

import ipaddress

from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings

from apps.common import filters
from apps.common.api import MerchantAPIView
from apps.common.crypto import fingerprint, mask_account_number
from apps.common.errors import ServiceError, rule_violation
from apps.common.fields import MultiLineCharField, PhoneField, SingleLineCharField, StrictSerializerMixin
from apps.risk.engine import MAX_EXPRESSION_LENGTH, ExpressionError, compile_expression
from apps.risk.models import Case, CaseNote, ListEntry, Rule, RuleVersion, Scope
from apps.risk.rules import rule_backtest, rule_create, rule_retire, rule_stats, rule_update
from apps.risk.services import (
    REVIEWER_DECISION_CHOICES,
    case_assign,
    case_decide,
    case_note_add,
    list_entry_create,
    list_entry_delete,
    list_entry_update,
)

MAX_BACKTEST_DAYS = 90


class PlatformRuleReadOnlyError(ServiceError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "platform_rule_read_only"


# --- rules -----------------------------------------------------------------------------------------


class ExpressionField(MultiLineCharField):
    """A rule expression, compiled on the way in: unknown features, Python internals, `$` symbols
    and non-yes/no expressions are refused here with the engine's message."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", MAX_EXPRESSION_LENGTH)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            compile_expression(value)
        except ExpressionError as exc:
            raise rule_violation(str(exc)) from None
        return value


class RuleInSerializer(StrictSerializerMixin, serializers.Serializer):
    code = serializers.SlugField(max_length=64)
    name = SingleLineCharField(max_length=200)
    description = MultiLineCharField(max_length=2000, required=False, allow_blank=True)
    scope = serializers.ChoiceField(choices=Scope.choices)
    expression = ExpressionField()
    action = serializers.ChoiceField(choices=Rule.Action.choices)
    severity = serializers.ChoiceField(choices=Rule.Severity.choices, required=False)
    score_modifier = serializers.IntegerField(min_value=-1000, max_value=1000, required=False)
    priority = serializers.IntegerField(min_value=0, max_value=100000, required=False)
    mode = serializers.ChoiceField(choices=Rule.Mode.choices, required=False)


class RuleUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    name = SingleLineCharField(max_length=200, required=False)
    description = MultiLineCharField(max_length=2000, required=False, allow_blank=True)
    expression = ExpressionField(required=False)
    action = serializers.ChoiceField(choices=Rule.Action.choices, required=False)
    severity = serializers.ChoiceField(choices=Rule.Severity.choices, required=False)
    score_modifier = serializers.IntegerField(min_value=-1000, max_value=1000, required=False)
    priority = serializers.IntegerField(min_value=0, max_value=100000, required=False)
    mode = serializers.ChoiceField(choices=Rule.Mode.choices, required=False)


class RuleOutSerializer(serializers.ModelSerializer):
    is_platform = serializers.SerializerMethodField()

    class Meta:
        model = Rule
        fields = (
            "id",
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
            "version",
            "is_platform",
            "updated_by",
            "updated_at",
            "created_at",
        )
        read_only_fields = fields

    def get_is_platform(self, rule: Rule) -> bool:
        return rule.merchant_id is None


class RuleVersionOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = RuleVersion
        fields = (
            "version",
            "expression",
            "action",
            "mode",
            "priority",
            "severity",
            "score_modifier",
            "changed_by",
            "changed_at",
        )
        read_only_fields = fields


class RuleTestSerializer(StrictSerializerMixin, serializers.Serializer):
    scope = serializers.ChoiceField(choices=Scope.choices)
    expression = ExpressionField()
    days = serializers.IntegerField(min_value=1, max_value=MAX_BACKTEST_DAYS, required=False, default=30)


class _RuleView(MerchantAPIView):
    def visible_rules(self):
        # Retired rules are gone from the API: 404 on every by-id route, absent from the list.
        return Rule.objects.live().filter(Q(merchant=self.merchant) | Q(merchant__isnull=True))

    def get_rule(self, pk: int) -> Rule:
        return get_object_or_404(self.visible_rules(), pk=pk)

    def get_own_rule(self, pk: int) -> Rule:
        rule = self.get_rule(pk)
        if rule.merchant_id is None:
            raise PlatformRuleReadOnlyError(
                _("Platform rules are read-only; create a rule of your own (POST /api/v1/rules) instead.")
            )
        return rule


class RuleFilters(filters.QueryFilters):
    scope = filters.choice(Scope.values)
    mode = filters.choice(Rule.Mode.values)


class RuleListCreateView(_RuleView):
    """The merchant's rules and the platform's (read-only), in evaluation order."""

    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(
        responses=RuleOutSerializer(many=True),
        parameters=[RuleFilters],
    )
    def get(self, request):
        queryset = self.visible_rules().order_by("priority", "id").filter(**RuleFilters.parse(request))
        return self.paginated(queryset, RuleOutSerializer)

    @extend_schema(request=RuleInSerializer, responses={201: RuleOutSerializer})
    def post(self, request):
        data = RuleInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rule = rule_create(merchant=self.merchant, actor=self.actor, **data.validated_data)
        return Response(RuleOutSerializer(rule).data, status=status.HTTP_201_CREATED)


class RuleDetailView(_RuleView):
    @extend_schema(responses=RuleOutSerializer)
    def get(self, request, pk: int):
        return Response(RuleOutSerializer(self.get_rule(pk)).data)

    @extend_schema(request=RuleUpdateSerializer, responses=RuleOutSerializer)
    def patch(self, request, pk: int):
        rule = self.get_own_rule(pk)
        data = RuleUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        rule = rule_update(rule=rule, actor=self.actor, **data.validated_data)
        return Response(RuleOutSerializer(rule).data)

    @extend_schema(
        request=None,
        responses={
            204: OpenApiResponse(
                None,
                description="Retired: from now on the rule answers 404 here and is never evaluated; its history stays.",
            )
        },
    )
    def delete(self, request, pk: int):
        """Retire the rule: it leaves the API and the engine (its hits, versions and audit rows stay)."""
        rule_retire(rule=self.get_own_rule(pk), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RuleVersionsView(_RuleView):
    action_name = "versions"
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(responses=RuleVersionOutSerializer(many=True))
    def get(self, request, pk: int):
        rule = self.get_rule(pk)
        return self.paginated(rule.versions.order_by("-version"), RuleVersionOutSerializer)


class RuleStatsView(_RuleView):
    """Hits (active/shadow/decisive), review outcomes and false-positive rate, for this merchant."""

    action_name = "stats"

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, pk: int):
        rule = self.get_rule(pk)
        return Response({"rule_id": rule.pk, "code": rule.code, **rule_stats(rule=rule, merchant=self.merchant)})


class RuleTestView(MerchantAPIView):
    """Back-test an expression on the merchant's recorded requests of the last `days` days."""

    @extend_schema(request=RuleTestSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        data = RuleTestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(rule_backtest(merchant=self.merchant, **data.validated_data))


# --- cases -----------------------------------------------------------------------------------------


class CaseNoteOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = CaseNote
        fields = ("id", "author", "text", "created_at")
        read_only_fields = fields


class CaseOutSerializer(serializers.ModelSerializer):
    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Case
        fields = (
            "id",
            "subject_type",
            "subject_id",
            "reason",
            "detail",
            "status",
            "assignee",
            "decision",
            "decided_by",
            "decided_at",
            "sla_due_at",
            "created_at",
        )
        read_only_fields = fields


class CaseDetailOutSerializer(CaseOutSerializer):
    notes = CaseNoteOutSerializer(many=True, read_only=True)

    class Meta(CaseOutSerializer.Meta):
        fields = (*CaseOutSerializer.Meta.fields, "notes")
        read_only_fields = fields


class CaseAssignSerializer(StrictSerializerMixin, serializers.Serializer):
    assignee = SingleLineCharField(max_length=150)


class CaseDecideSerializer(StrictSerializerMixin, serializers.Serializer):
    decision = serializers.ChoiceField(choices=REVIEWER_DECISION_CHOICES)
    note = MultiLineCharField(max_length=2000, required=False, allow_blank=True)


class CaseNoteInSerializer(StrictSerializerMixin, serializers.Serializer):
    text = MultiLineCharField(max_length=2000)


class CaseFilters(filters.QueryFilters):
    status = filters.choice(Case.Status.values)
    subject_type = filters.choice(["refund", "payout", "withdrawal"])


class CaseListView(MerchantAPIView):
    """The review queue: what a person has to decide, oldest first."""

    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(
        responses=CaseOutSerializer(many=True),
        parameters=[CaseFilters],
    )
    def get(self, request):
        queryset = (
            Case.objects.filter(merchant=self.merchant, **CaseFilters.parse(request))
            .select_related("assignee")
            .order_by("created_at", "id")
        )
        return self.paginated(queryset, CaseOutSerializer)


class _CaseView(MerchantAPIView):
    def get_case(self, pk: int) -> Case:
        return get_object_or_404(Case.objects.filter(merchant=self.merchant), pk=pk)

    def respond(self, case: Case, *, status_code: int = status.HTTP_200_OK) -> Response:
        case = Case.objects.select_related("assignee").prefetch_related("notes").get(pk=case.pk)
        return Response(CaseDetailOutSerializer(case).data, status=status_code)


class CaseDetailView(_CaseView):
    @extend_schema(responses=CaseDetailOutSerializer)
    def get(self, request, pk: int):
        return self.respond(self.get_case(pk))


class CaseAssignView(_CaseView):
    action_name = "assign"

    @extend_schema(request=CaseAssignSerializer, responses=CaseDetailOutSerializer)
    def post(self, request, pk: int):
        case = self.get_case(pk)
        data = CaseAssignSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        case = case_assign(case=case, assignee_username=data.validated_data["assignee"], actor=self.actor)
        return self.respond(case)


class CaseDecideView(_CaseView):
    """Approve or decline; a refund case moves the refund (approved → submitted, declined → rejected)."""

    action_name = "decide"

    @extend_schema(request=CaseDecideSerializer, responses=CaseDetailOutSerializer)
    def post(self, request, pk: int):
        case = self.get_case(pk)
        data = CaseDecideSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        case = case_decide(
            case=case,
            decision=data.validated_data["decision"],
            actor=self.actor,
            note=data.validated_data.get("note", ""),
        )
        return self.respond(case)


class CaseNotesView(_CaseView):
    action_name = "notes"

    @extend_schema(request=CaseNoteInSerializer, responses={201: CaseDetailOutSerializer})
    def post(self, request, pk: int):
        case = self.get_case(pk)
        data = CaseNoteInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        case_note_add(case=case, author=self.actor, text=data.validated_data["text"])
        return self.respond(case, status_code=status.HTTP_201_CREATED)


# The actions on one case, each at /cases/{id}/<its action_name> (apps.risk.urls).
CASE_ACTIONS = (CaseAssignView, CaseDecideView, CaseNotesView)


# --- allow / block lists ---------------------------------------------------------------------------

_VALUE_FIELDS = {
    ListEntry.Kind.CUSTOMER: lambda: SingleLineCharField(max_length=100),
    ListEntry.Kind.DEVICE: lambda: SingleLineCharField(max_length=100),
    ListEntry.Kind.IP: lambda: serializers.IPAddressField(),
    ListEntry.Kind.EMAIL: lambda: serializers.EmailField(max_length=254),
    ListEntry.Kind.PHONE: lambda: PhoneField(),
}


class ListEntryInSerializer(StrictSerializerMixin, serializers.Serializer):
    """`value` for every kind but bank_account, which takes `account_number` instead: only its
    fingerprint is stored (and "**** 1234" for display), never the number."""

    list_type = serializers.ChoiceField(choices=ListEntry.ListType.choices)
    kind = serializers.ChoiceField(choices=ListEntry.Kind.choices)
    value = serializers.CharField(required=False, max_length=254, trim_whitespace=False)
    account_number = serializers.CharField(required=False, max_length=64)
    reason = SingleLineCharField(max_length=500)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate(self, attrs):
        kind = attrs["kind"]
        if kind == ListEntry.Kind.BANK_ACCOUNT:
            if "value" in attrs:
                raise rule_violation({"value": [_("Give account_number for a bank account entry.")]})
            digits = attrs.pop("account_number", "").replace(" ", "")
            if not (digits.isascii() and digits.isdigit()) or not 8 <= len(digits) <= 30:
                raise rule_violation({"account_number": [_("Must be 8–30 digits.")]})
            attrs["value"] = fingerprint(digits)
            attrs["display"] = mask_account_number(digits[-4:])
            return attrs
        if "account_number" in attrs:
            raise rule_violation({"account_number": [_("Only for bank_account entries.")]})
        if "value" not in attrs:
            raise rule_violation({"value": [_("This field is required.")]})
        try:
            value = _VALUE_FIELDS[kind]().run_validation(attrs["value"])
        except serializers.ValidationError as exc:  # the kind decides the format: a rule, not the schema
            raise rule_violation({"value": [str(message) for message in exc.detail]}) from None
        if kind == ListEntry.Kind.IP:
            value = str(ipaddress.ip_address(value))
        attrs["value"] = value
        return attrs


class ListEntryUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    reason = SingleLineCharField(max_length=500, required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ListEntryOutSerializer(serializers.ModelSerializer):
    value = serializers.SerializerMethodField()
    is_active = serializers.SerializerMethodField()

    class Meta:
        model = ListEntry
        fields = ("id", "list_type", "kind", "value", "reason", "expires_at", "is_active", "created_by", "created_at")
        read_only_fields = fields

    def get_value(self, entry: ListEntry) -> str:
        return entry.display or ("" if entry.kind == ListEntry.Kind.BANK_ACCOUNT else entry.value)

    def get_is_active(self, entry: ListEntry) -> bool:
        return entry.expires_at is None or entry.expires_at > timezone.now()


class _ListView(MerchantAPIView):
    def entries(self):
        return ListEntry.objects.filter(merchant=self.merchant)


class ListEntryFilters(filters.QueryFilters):
    list_type = filters.choice(ListEntry.ListType.values)
    kind = filters.choice(ListEntry.Kind.values)


class ListEntryListCreateView(_ListView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(
        responses=ListEntryOutSerializer(many=True),
        parameters=[ListEntryFilters],
    )
    def get(self, request):
        queryset = self.entries().filter(**ListEntryFilters.parse(request)).order_by("-created_at", "-id")
        return self.paginated(queryset, ListEntryOutSerializer)

    @extend_schema(request=ListEntryInSerializer, responses={201: ListEntryOutSerializer})
    def post(self, request):
        data = ListEntryInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        entry = list_entry_create(merchant=self.merchant, actor=self.actor, **data.validated_data)
        return Response(ListEntryOutSerializer(entry).data, status=status.HTTP_201_CREATED)


class ListEntryDetailView(_ListView):
    def get_entry(self, pk: int) -> ListEntry:
        return get_object_or_404(self.entries(), pk=pk)

    @extend_schema(responses=ListEntryOutSerializer)
    def get(self, request, pk: int):
        return Response(ListEntryOutSerializer(self.get_entry(pk)).data)

    @extend_schema(request=ListEntryUpdateSerializer, responses=ListEntryOutSerializer)
    def patch(self, request, pk: int):
        entry = self.get_entry(pk)
        data = ListEntryUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return Response(ListEntryOutSerializer(list_entry_update(entry=entry, **data.validated_data)).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, pk: int):
        list_entry_delete(entry=self.get_entry(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

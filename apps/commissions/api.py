"""Commissions API: a merchant's distributor commissions (the statement) and its commission plans.

    GET   /api/v1/commissions               filter beneficiary (customer external_id), order (external_id),
                                            status, level; each item with its events
    GET   /api/v1/commissions/{id}
    GET   /api/v1/commission-plans
    POST  /api/v1/commission-plans          {"product"?: sku, "mode", "levels", "depth"?, "currency"?, "name"?}
    PATCH /api/v1/commission-plans/{id}

Another merchant's ids do not exist for the caller (404).
"""

from __future__ import annotations

from django.http import Http404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.settings import api_settings

from apps.commissions.models import Commission, CommissionEvent, CommissionPlan
from apps.commissions.selectors import (
    commission_get_for_merchant,
    commission_list_for_merchant,
    commission_plan_list_for_merchant,
)
from apps.commissions.services import commission_plan_create, commission_plan_update
from apps.common import filters
from apps.common.api import MerchantAPIView
from apps.common.fields import CurrencyField, SingleLineCharField, StrictBooleanField, StrictSerializerMixin


class CommissionEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = CommissionEvent
        fields = ("code", "from_status", "to_status", "amount", "reason", "refund_id", "actor", "detail", "created_at")
        read_only_fields = fields


class CommissionSerializer(serializers.ModelSerializer):
    order = serializers.SlugRelatedField(slug_field="external_id", read_only=True)
    beneficiary = serializers.SlugRelatedField(slug_field="external_id", read_only=True)
    events = CommissionEventSerializer(many=True, read_only=True)

    class Meta:
        model = Commission
        fields = (
            "id",
            "order",
            "beneficiary",
            "level",
            "amount",
            "currency",
            "clawed_back_amount",
            "paid_amount",
            "status",
            "status_before_freeze",
            "available_at",
            "paid_at",
            "created_at",
            "events",
        )
        read_only_fields = fields


class _IntegerListField(serializers.ListField):
    child = serializers.IntegerField(min_value=0)

    def to_internal_value(self, data):
        # Integers only: DRF's IntegerField would take "100" or 100.0.
        if isinstance(data, list) and any(isinstance(v, bool) or not isinstance(v, int) for v in data):
            raise ValidationError(_("Must be a list of integers."))
        return super().to_internal_value(data)


class _StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            raise ValidationError(_("Must be an integer."))
        return super().to_internal_value(data)


class CommissionPlanInSerializer(StrictSerializerMixin, serializers.Serializer):
    product = SingleLineCharField(max_length=100, required=False, allow_null=True, help_text="Product sku.")
    name = SingleLineCharField(max_length=100, required=False, allow_blank=True)
    mode = serializers.ChoiceField(choices=CommissionPlan.Mode.choices, required=False)
    levels = _IntegerListField(min_length=1, max_length=10, help_text="Basis points or minor units per level.")
    depth = _StrictIntegerField(min_value=1, max_value=10, required=False)
    currency = CurrencyField(required=False)
    is_active = StrictBooleanField(required=False)


class CommissionPlanUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    name = SingleLineCharField(max_length=100, required=False, allow_blank=True)
    mode = serializers.ChoiceField(choices=CommissionPlan.Mode.choices, required=False)
    levels = _IntegerListField(min_length=1, max_length=10, required=False)
    depth = _StrictIntegerField(min_value=1, max_value=10, required=False)
    currency = CurrencyField(required=False)
    is_active = StrictBooleanField(required=False)


class CommissionPlanSerializer(serializers.ModelSerializer):
    product = serializers.SlugRelatedField(slug_field="sku", read_only=True)
    levels = serializers.ListField(child=serializers.IntegerField(), read_only=True)

    class Meta:
        model = CommissionPlan
        fields = (
            "id",
            "product",
            "name",
            "mode",
            "levels",
            "depth",
            "currency",
            "is_active",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class CommissionFilters(filters.QueryFilters):
    beneficiary = filters.text(help_text="The distributor's customer external_id.")
    order = filters.text(help_text="The order's external_id.")
    status = filters.choice(Commission.Status.values)
    # PositiveSmallIntegerField: level 1 is the nearest upline.
    level = filters.integer(min_value=1, max_value=32767)


class CommissionListView(MerchantAPIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(responses=CommissionSerializer(many=True), parameters=[CommissionFilters])
    def get(self, request):
        rows = commission_list_for_merchant(merchant=self.merchant, **CommissionFilters.parse(request))
        return self.paginated(rows, CommissionSerializer)


class CommissionDetailView(MerchantAPIView):
    @extend_schema(responses=CommissionSerializer)
    def get(self, request, pk: int):
        commission = commission_get_for_merchant(merchant=self.merchant, pk=pk)
        if commission is None:
            raise Http404
        return Response(CommissionSerializer(commission).data)


class CommissionPlanListCreateView(MerchantAPIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(responses=CommissionPlanSerializer(many=True))
    def get(self, request):
        return self.paginated(commission_plan_list_for_merchant(merchant=self.merchant), CommissionPlanSerializer)

    @extend_schema(request=CommissionPlanInSerializer, responses={201: CommissionPlanSerializer})
    def post(self, request):
        data = CommissionPlanInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        plan = commission_plan_create(merchant=self.merchant, product_sku=fields.pop("product", None), **fields)
        return Response(CommissionPlanSerializer(plan).data, status=status.HTTP_201_CREATED)


class CommissionPlanDetailView(MerchantAPIView):
    def get_object(self, pk: int) -> CommissionPlan:
        plan = commission_plan_list_for_merchant(merchant=self.merchant).filter(pk=pk).first()
        if plan is None:
            raise Http404
        return plan

    @extend_schema(responses=CommissionPlanSerializer)
    def get(self, request, pk: int):
        return Response(CommissionPlanSerializer(self.get_object(pk)).data)

    @extend_schema(request=CommissionPlanUpdateSerializer, responses=CommissionPlanSerializer)
    def patch(self, request, pk: int):
        plan = self.get_object(pk)
        data = CommissionPlanUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        plan = commission_plan_update(plan=plan, **data.validated_data)
        return Response(CommissionPlanSerializer(plan).data)

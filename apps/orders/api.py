from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings

from apps.accounts.api import AccountInSerializer
from apps.common import filters
from apps.common.api import MerchantAPIView
from apps.common.fields import (
    CurrencyField,
    MinorUnitsField,
    PathSegmentField,
    SingleLineCharField,
    StrictBooleanField,
    StrictSerializerMixin,
)
from apps.orders.models import Order, Product, RefundPolicy, UsageEvent
from apps.orders.selectors import order_list_for_merchant, product_list_for_merchant, usage_list_for_order
from apps.orders.services import order_create, product_create, product_update, usage_record


class RefundPolicySerializer(StrictSerializerMixin, serializers.ModelSerializer):
    class Meta:
        model = RefundPolicy
        fields = (
            "unconditional_minutes",
            "conditional_hours",
            "max_progress_pct",
            "lock_on_key_reveal",
            "lock_on_key_activation",
            "lock_on_download",
            "lock_on_any_usage",
        )
        extra_kwargs = {
            "unconditional_minutes": {"min_value": 0, "max_value": 7 * 24 * 60},
            "conditional_hours": {"min_value": 0, "max_value": 365 * 24},
            "max_progress_pct": {"min_value": 0, "max_value": 100},
        }

    def to_internal_value(self, data):
        # Integers only: DRF's IntegerField would take "15" or 15.0.
        if isinstance(data, dict):
            for name in ("unconditional_minutes", "conditional_hours", "max_progress_pct"):
                value = data.get(name)
                if name in data and (isinstance(value, bool) or not isinstance(value, int)):
                    raise serializers.ValidationError({name: [_("Must be an integer.")]})
            for name in ("lock_on_key_reveal", "lock_on_key_activation", "lock_on_download", "lock_on_any_usage"):
                if name in data and not isinstance(data[name], bool):
                    raise serializers.ValidationError({name: [_("Must be true or false.")]})
        return super().to_internal_value(data)


class ProductInSerializer(StrictSerializerMixin, serializers.Serializer):
    sku = PathSegmentField(max_length=100)
    name = SingleLineCharField(max_length=200)
    kind = serializers.ChoiceField(choices=Product.Kind.choices)
    price = MinorUnitsField()
    currency = CurrencyField()
    refund_policy = RefundPolicySerializer(required=False)


class ProductUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    name = SingleLineCharField(max_length=200, required=False)
    price = MinorUnitsField(required=False)
    is_active = StrictBooleanField(required=False)
    refund_policy = RefundPolicySerializer(required=False, partial=True)

    def to_internal_value(self, data):
        # true/false only: DRF's BooleanField would take "no", "off" or 0 and deactivate the product.
        if isinstance(data, dict) and "is_active" in data and not isinstance(data["is_active"], bool):
            raise serializers.ValidationError({"is_active": [_("Must be true or false.")]})
        return super().to_internal_value(data)


class ProductOutSerializer(serializers.ModelSerializer):
    refund_policy = RefundPolicySerializer(read_only=True)

    class Meta:
        model = Product
        fields = ("id", "sku", "name", "kind", "price", "currency", "is_active", "refund_policy", "created_at")
        read_only_fields = fields


class ProductFilters(filters.QueryFilters):
    sku = filters.text()


class ProductListCreateView(MerchantAPIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(responses=ProductOutSerializer(many=True), parameters=[ProductFilters])
    def get(self, request):
        queryset = product_list_for_merchant(merchant=self.merchant)
        if sku := ProductFilters.parse(request).get("sku"):
            queryset = queryset.filter(sku=sku)
        return self.paginated(queryset, ProductOutSerializer)

    @extend_schema(request=ProductInSerializer, responses={201: ProductOutSerializer})
    def post(self, request):
        data = ProductInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        product = product_create(merchant=self.merchant, **data.validated_data)
        return Response(ProductOutSerializer(product).data, status=status.HTTP_201_CREATED)


class ProductDetailView(MerchantAPIView):
    def get_object(self, pk: int) -> Product:
        return get_object_or_404(product_list_for_merchant(merchant=self.merchant), pk=pk)

    @extend_schema(responses=ProductOutSerializer)
    def get(self, request, pk: int):
        return Response(ProductOutSerializer(self.get_object(pk)).data)

    @extend_schema(request=ProductUpdateSerializer, responses=ProductOutSerializer)
    def patch(self, request, pk: int):
        product = self.get_object(pk)
        data = ProductUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        product = product_update(product=product, **data.validated_data)
        product.refresh_from_db()
        return Response(ProductOutSerializer(product).data)


def masked_account(account) -> dict | None:
    """A bank account as any response may show it: holder, bank and `**** 1234`, never the number."""
    if account is None:
        return None
    return {"holder_name": account.holder_name, "bank": account.bank, "account_number": account.masked_number}


class OrderInSerializer(StrictSerializerMixin, serializers.Serializer):
    external_id = PathSegmentField(max_length=100)
    customer = SingleLineCharField(max_length=100)
    product = SingleLineCharField(max_length=100)
    amount = MinorUnitsField()
    currency = CurrencyField()
    paid_at = serializers.DateTimeField()
    payment_method = serializers.ChoiceField(choices=Order.PaymentMethod.choices)
    device_id = SingleLineCharField(max_length=100, required=False, allow_blank=True)
    ip = serializers.IPAddressField(required=False, allow_null=True)
    referrer = SingleLineCharField(max_length=100, required=False, allow_null=True)
    payer_account = AccountInSerializer(required=False)


class OrderOutSerializer(serializers.ModelSerializer):
    customer = serializers.SlugRelatedField(slug_field="external_id", read_only=True)
    product = serializers.SlugRelatedField(slug_field="sku", read_only=True)
    referrer = serializers.SlugRelatedField(slug_field="external_id", read_only=True)
    payer_account = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = (
            "id",
            "external_id",
            "customer",
            "product",
            "amount",
            "currency",
            "paid_at",
            "payment_method",
            "device_id",
            "ip",
            "referrer",
            "payer_account",
            "created_at",
        )
        read_only_fields = fields

    def get_payer_account(self, order: Order) -> dict | None:
        return masked_account(order.payer_account)


class OrderFilters(filters.QueryFilters):
    external_id = filters.text()


class OrderListCreateView(MerchantAPIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(responses=OrderOutSerializer(many=True), parameters=[OrderFilters])
    def get(self, request):
        queryset = order_list_for_merchant(merchant=self.merchant)
        if external_id := OrderFilters.parse(request).get("external_id"):
            queryset = queryset.filter(external_id=external_id)
        return self.paginated(queryset, OrderOutSerializer)

    @extend_schema(request=OrderInSerializer, responses={201: OrderOutSerializer})
    def post(self, request):
        data = OrderInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        order = order_create(
            merchant=self.merchant,
            customer_external_id=fields.pop("customer"),
            product_sku=fields.pop("product"),
            referrer_external_id=fields.pop("referrer", None),
            **fields,
        )
        return Response(OrderOutSerializer(order).data, status=status.HTTP_201_CREATED)


class OrderDetailView(MerchantAPIView):
    @extend_schema(responses=OrderOutSerializer)
    def get(self, request, pk: int):
        order = get_object_or_404(order_list_for_merchant(merchant=self.merchant), pk=pk)
        return Response(OrderOutSerializer(order).data)


class UsageInSerializer(StrictSerializerMixin, serializers.Serializer):
    kind = serializers.ChoiceField(choices=UsageEvent.Kind.choices)
    value = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=100)
    occurred_at = serializers.DateTimeField(required=False)

    def validate_value(self, value):
        raw = self.initial_data.get("value")
        if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int)):
            raise serializers.ValidationError(_("Must be an integer percent."))
        return value


class UsageOutSerializer(serializers.ModelSerializer):
    class Meta:
        model = UsageEvent
        fields = ("id", "kind", "value", "occurred_at", "created_at")
        read_only_fields = fields


class OrderUsageView(MerchantAPIView):
    action_name = "usage"
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    def get_order(self, pk: int) -> Order:
        return get_object_or_404(Order.objects.filter(merchant=self.merchant), pk=pk)

    @extend_schema(responses=UsageOutSerializer(many=True))
    def get(self, request, pk: int):
        return self.paginated(usage_list_for_order(order=self.get_order(pk)), UsageOutSerializer)

    @extend_schema(request=UsageInSerializer, responses={201: UsageOutSerializer})
    def post(self, request, pk: int):
        order = self.get_order(pk)
        data = UsageInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = usage_record(order=order, **data.validated_data)
        return Response(UsageOutSerializer(event).data, status=status.HTTP_201_CREATED)

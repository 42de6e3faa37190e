from django.core.validators import RegexValidator
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings

from apps.accounts.models import AccountFreeze, Customer, Locale, User
from apps.accounts.selectors import customer_list_for_merchant
from apps.accounts.services import account_freeze_from_request, account_unfreeze, customer_create, customer_update
from apps.common import filters
from apps.common.api import MerchantAPIView
from apps.common.errors import ConflictError, rule_violation
from apps.common.fields import (
    MultiLineCharField,
    PathSegmentField,
    PhoneField,
    SingleLineCharField,
    StrictSerializerMixin,
)


class AccountInSerializer(StrictSerializerMixin, serializers.Serializer):
    """A bank account given by its details (orders' payer, refunds' and payouts' destinations, freezes)."""

    holder_name = SingleLineCharField(max_length=200)
    bank = SingleLineCharField(max_length=100)
    # A string only: as a JSON number it would lose leading zeros (and precision in JS clients).
    account_number = SingleLineCharField(
        max_length=30, validators=[RegexValidator(r"^\d{8,30}$", "Must be 8–30 digits.")]
    )


class CustomerInSerializer(StrictSerializerMixin, serializers.Serializer):
    external_id = PathSegmentField(max_length=100)
    name = SingleLineCharField(max_length=200)
    phone = PhoneField(required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    locale = serializers.ChoiceField(choices=Locale.choices, required=False)
    referrer = SingleLineCharField(max_length=100, required=False, allow_null=True)
    registered_at = serializers.DateTimeField(required=False)


class CustomerUpdateSerializer(StrictSerializerMixin, serializers.Serializer):
    name = SingleLineCharField(max_length=200, required=False)
    phone = PhoneField(required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    locale = serializers.ChoiceField(choices=Locale.choices, required=False)


class CustomerOutSerializer(serializers.ModelSerializer):
    referrer = serializers.SlugRelatedField(slug_field="external_id", read_only=True)

    class Meta:
        model = Customer
        fields = (
            "id",
            "external_id",
            "name",
            "phone",
            "email",
            "locale",
            "referrer",
            "registered_at",
            "trust_level",
            "created_at",
        )
        read_only_fields = fields


class CustomerFilters(filters.QueryFilters):
    external_id = filters.text()


class CustomerListCreateView(MerchantAPIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(responses=CustomerOutSerializer(many=True), parameters=[CustomerFilters])
    def get(self, request):
        queryset = customer_list_for_merchant(merchant=self.merchant)
        if external_id := CustomerFilters.parse(request).get("external_id"):
            queryset = queryset.filter(external_id=external_id)
        return self.paginated(queryset, CustomerOutSerializer)

    @extend_schema(request=CustomerInSerializer, responses={201: CustomerOutSerializer})
    def post(self, request):
        data = CustomerInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        customer = customer_create(merchant=self.merchant, referrer_external_id=fields.pop("referrer", None), **fields)
        return Response(CustomerOutSerializer(customer).data, status=status.HTTP_201_CREATED)


class CustomerDetailView(MerchantAPIView):
    def get_object(self, pk: int) -> Customer:
        return get_object_or_404(customer_list_for_merchant(merchant=self.merchant), pk=pk)

    @extend_schema(responses=CustomerOutSerializer)
    def get(self, request, pk: int):
        return Response(CustomerOutSerializer(self.get_object(pk)).data)

    @extend_schema(request=CustomerUpdateSerializer, responses=CustomerOutSerializer)
    def patch(self, request, pk: int):
        customer = self.get_object(pk)
        data = CustomerUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        customer = customer_update(customer=customer, **data.validated_data)
        return Response(CustomerOutSerializer(customer).data)


# --- freezes (the unfreeze workflow) ---------------------------------------------------------------


class FreezeOutSerializer(serializers.ModelSerializer):
    customer = serializers.SlugRelatedField(slug_field="external_id", read_only=True)
    bank_account = serializers.SerializerMethodField()
    actor = serializers.CharField(source="actor_label", read_only=True)
    lifted_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = AccountFreeze
        fields = (
            "id",
            "customer",
            "bank_account",
            "reason",
            "actor",
            "created_at",
            "is_active",
            "lifted_at",
            "lifted_by",
            "lift_reason",
        )
        read_only_fields = fields

    def get_bank_account(self, freeze: AccountFreeze) -> str | None:
        return freeze.bank_account.masked_number if freeze.bank_account_id else None


class FreezeInSerializer(StrictSerializerMixin, serializers.Serializer):
    """Freeze a customer (the merchant's external_id) and/or an account: a stored one by id, or by
    its details. At least one of them."""

    customer = SingleLineCharField(max_length=100, required=False)
    bank_account_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
    bank_account = AccountInSerializer(required=False)
    reason = MultiLineCharField(max_length=500)

    def validate(self, attrs):
        if not {"customer", "bank_account_id", "bank_account"} & set(attrs):
            raise rule_violation({"customer": [_("Give customer, bank_account or bank_account_id.")]})
        if "bank_account_id" in attrs and "bank_account" in attrs:
            raise rule_violation({"bank_account_id": [_("Not with bank_account.")]})
        return attrs


class FreezeLiftSerializer(StrictSerializerMixin, serializers.Serializer):
    reason = MultiLineCharField(max_length=500)


class _FreezeView(MerchantAPIView):
    def freezes(self):
        return (
            AccountFreeze.objects.filter(merchant=self.merchant)
            .select_related("customer", "bank_account", "lifted_by")
            .order_by("-created_at", "-id")
        )


class FreezeFilters(filters.QueryFilters):
    status = filters.choice(["active", "lifted"], help_text="active: not lifted yet.")
    customer = filters.text(help_text="The customer's external_id.")


class FreezeListView(_FreezeView):
    """Frozen customers and accounts (the risk engine's block_and_freeze, or staff), active or lifted."""

    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(
        responses=FreezeOutSerializer(many=True),
        parameters=[FreezeFilters],
    )
    def get(self, request):
        queryset = self.freezes()
        wanted = FreezeFilters.parse(request)
        if "status" in wanted:
            queryset = queryset.filter(lifted_at__isnull=wanted["status"] == "active")
        if customer := wanted.get("customer"):
            queryset = queryset.filter(customer__external_id=customer)
        return self.paginated(queryset, FreezeOutSerializer)

    @extend_schema(request=FreezeInSerializer, responses={201: FreezeOutSerializer})
    def post(self, request):
        """Freeze a customer or a destination account: its approved, queued and retrying refunds,
        payouts and withdrawals are held at their next submission attempt until the freeze is lifted."""
        data = FreezeInSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        freeze = account_freeze_from_request(
            merchant=self.merchant,
            reason=fields["reason"],
            actor_label=request.user.get_username()[:100],
            customer_external_id=fields.get("customer"),
            bank_account_id=fields.get("bank_account_id"),
            bank_account=dict(fields["bank_account"]) if "bank_account" in fields else None,
        )
        freeze = self.freezes().get(pk=freeze.pk)
        return Response(FreezeOutSerializer(freeze).data, status=status.HTTP_201_CREATED)


class FreezeDetailView(_FreezeView):
    @extend_schema(responses=FreezeOutSerializer)
    def get(self, request, pk: int):
        return Response(FreezeOutSerializer(get_object_or_404(self.freezes(), pk=pk)).data)


class FreezeLiftView(_FreezeView):
    """Lift a freeze with a reason; money to or from the customer/account flows again."""

    action_name = "lift"

    @extend_schema(request=FreezeLiftSerializer, responses=FreezeOutSerializer)
    def post(self, request, pk: int):
        freeze = get_object_or_404(self.freezes(), pk=pk)
        data = FreezeLiftSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not freeze.is_active:
            raise ConflictError(_("This freeze was already lifted."), code="freeze_lifted")
        actor = request.user if isinstance(request.user, User) else None
        freeze = account_unfreeze(freeze=freeze, actor=actor, reason=data.validated_data["reason"])
        return Response(FreezeOutSerializer(freeze).data)

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings

from apps.accounts.models import Customer, Locale
from apps.accounts.selectors import customer_list_for_merchant
from apps.accounts.services import customer_create, customer_update
from apps.common.api import MerchantAPIView
from apps.common.fields import PhoneField, SingleLineCharField, StrictSerializerMixin


class CustomerInSerializer(StrictSerializerMixin, serializers.Serializer):
    external_id = SingleLineCharField(max_length=100)
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


class CustomerListCreateView(MerchantAPIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(responses=CustomerOutSerializer(many=True))
    def get(self, request):
        queryset = customer_list_for_merchant(merchant=self.merchant)
        if external_id := self.query_text("external_id"):
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

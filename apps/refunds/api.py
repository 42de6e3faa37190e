from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings

from apps.common import filters
from apps.common.api import MerchantAPIView, ObjectActionView
from apps.common.fields import (
    CurrencyField,
    MinorUnitsField,
    MultiLineCharField,
    SingleLineCharField,
    StrictSerializerMixin,
)
from apps.common.idempotency import idempotency_key_parameter
from apps.orders.api import AccountInSerializer, masked_account
from apps.orders.models import Product
from apps.refunds.models import Refund, RefundEvent
from apps.refunds.selectors import refund_list_for_merchant, refund_reason_stats_for_product
from apps.refunds.services import refund_cancel, refund_progress_url, refund_request, refund_review

IDEMPOTENCY_HEADER = idempotency_key_parameter("refund")


class RefundInSerializer(StrictSerializerMixin, serializers.Serializer):
    order = SingleLineCharField(max_length=100)
    amount = MinorUnitsField()
    currency = CurrencyField(required=False)
    reason = serializers.ChoiceField(choices=Refund.Reason.choices)
    reason_text = MultiLineCharField(max_length=2000, required=False, allow_blank=True)
    device_id = SingleLineCharField(max_length=100, required=False, allow_blank=True)
    ip = serializers.IPAddressField(required=False, allow_null=True)
    destination_account = AccountInSerializer(required=False)


# One field object for every timestamp of a response (DRF's ISO 8601 with `Z`, in TIME_ZONE).
_DATETIME = serializers.DateTimeField()


class RefundOutSerializer(serializers.ModelSerializer):
    order = serializers.SlugRelatedField(slug_field="external_id", read_only=True)
    customer = serializers.SlugRelatedField(slug_field="external_id", read_only=True)
    destination_account = serializers.SerializerMethodField()
    progress_url = serializers.SerializerMethodField()
    support_ticket = serializers.SerializerMethodField()

    class Meta:
        model = Refund
        fields = (
            "id",
            "order",
            "customer",
            "amount",
            "currency",
            "reason",
            "reason_text",
            "status",
            "decision",
            "destination_account",
            "failure_code",
            "responsible_party",
            "retry_count",
            "expected_arrival_at",
            "progress_url",
            "support_ticket",
            "submitted_at",
            "succeeded_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    def to_representation(self, refund: Refund) -> dict:
        """The fields above, written out: ModelSerializer builds its ~20 field objects afresh for
        every serializer instance, which was a twentieth of a refund request's CPU. The declared
        fields still describe the response to the schema, and a test holds this to what the
        generic field-by-field serialisation gives (tests/refunds/test_refund_api.py)."""
        when = _DATETIME.to_representation
        return {
            "id": refund.pk,
            "order": refund.order.external_id,
            "customer": refund.customer.external_id,
            "amount": refund.amount,
            "currency": refund.currency,
            "reason": refund.reason,
            "reason_text": refund.reason_text,
            "status": refund.status,
            "decision": refund.decision,
            "destination_account": self.get_destination_account(refund),
            "failure_code": refund.failure_code,
            "responsible_party": refund.responsible_party,
            "retry_count": refund.retry_count,
            "expected_arrival_at": when(refund.expected_arrival_at),
            "progress_url": self.get_progress_url(refund),
            "support_ticket": self.get_support_ticket(refund),
            "submitted_at": when(refund.submitted_at),
            "succeeded_at": when(refund.succeeded_at),
            "created_at": when(refund.created_at),
            "updated_at": when(refund.updated_at),
        }

    def get_destination_account(self, refund: Refund) -> dict | None:
        return masked_account(refund.destination_account)

    def get_progress_url(self, refund: Refund) -> str:
        return refund_progress_url(refund)

    def get_support_ticket(self, refund: Refund) -> dict | None:
        if refund.decision.get("outcome") != "tech_support":
            return None  # tickets are opened only for that outcome: no query for the others
        ticket = getattr(refund, "support_ticket", None)
        if ticket is None:
            return None
        return {"id": ticket.pk, "category": ticket.category, "status": ticket.status, "guidance": ticket.guidance}


class RefundEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RefundEvent
        fields = ("id", "code", "from_status", "to_status", "message_key", "responsible_party", "actor", "created_at")
        read_only_fields = fields


class ReviewSerializer(StrictSerializerMixin, serializers.Serializer):
    note = MultiLineCharField(max_length=2000, required=False, allow_blank=True)


class RefundFilters(filters.QueryFilters):
    status = filters.choice(Refund.Status.values)
    order = filters.text(help_text="The order's external_id.")


class RefundListCreateView(MerchantAPIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(responses=RefundOutSerializer(many=True), parameters=[RefundFilters])
    def get(self, request):
        queryset = refund_list_for_merchant(merchant=self.merchant)
        wanted = RefundFilters.parse(request)
        if "status" in wanted:
            queryset = queryset.filter(status=wanted["status"])
        if order := wanted.get("order"):
            queryset = queryset.filter(order__external_id=order)
        return self.paginated(queryset, RefundOutSerializer)

    @extend_schema(request=RefundInSerializer, responses={201: RefundOutSerializer}, parameters=[IDEMPOTENCY_HEADER])
    def post(self, request):
        def create() -> Response:
            fields = self.body(RefundInSerializer)
            refund = refund_request(
                merchant=self.merchant, order_external_id=fields.pop("order"), actor=self.actor, **fields
            )
            return Response(RefundOutSerializer(refund).data, status=status.HTTP_201_CREATED)

        return self.idempotent(endpoint="refunds.create", handler=create)


class RefundDetailView(MerchantAPIView):
    @extend_schema(responses=RefundOutSerializer)
    def get(self, request, pk: int):
        refund = get_object_or_404(refund_list_for_merchant(merchant=self.merchant), pk=pk)
        return Response(RefundOutSerializer(refund).data)


class RefundEventsView(MerchantAPIView):
    action_name = "events"
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(responses=RefundEventSerializer(many=True))
    def get(self, request, pk: int):
        refund = get_object_or_404(Refund.objects.filter(merchant=self.merchant), pk=pk)
        return self.paginated(refund.events.all(), RefundEventSerializer)


class _RefundActionView(ObjectActionView):
    response_serializer = RefundOutSerializer

    def get_object(self, pk: int) -> Refund:
        return get_object_or_404(Refund.objects.filter(merchant=self.merchant), pk=pk)

    def get_result(self, pk: int) -> Refund:
        return refund_list_for_merchant(merchant=self.merchant).get(pk=pk)


class RefundCancelView(_RefundActionView):
    action_name = "cancel"

    def act(self, refund: Refund) -> None:
        refund_cancel(refund_id=refund.pk, actor=self.actor)


class RefundApproveView(_RefundActionView):
    action_name = "approve"
    request_serializer = ReviewSerializer
    approve = True

    def act(self, refund: Refund) -> None:
        refund_review(refund_id=refund.pk, approve=self.approve, actor=self.actor, **self.fields())


class RefundRejectView(RefundApproveView):
    action_name = "reject"
    approve = False


class ProductRefundStatsView(MerchantAPIView):
    """Reason statistics for one product: counts and amounts per reason and outcome, support categories."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, pk: int):
        product = get_object_or_404(Product.objects.filter(merchant=self.merchant), pk=pk)
        return Response(refund_reason_stats_for_product(product=product))


# The actions on one refund, each at /refunds/{id}/<its action_name> (apps.refunds.urls).
REFUND_ACTIONS = (RefundEventsView, RefundCancelView, RefundApproveView, RefundRejectView)

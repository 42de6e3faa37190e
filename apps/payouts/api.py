"""REST API for payouts, withdrawals and their incidents: parse, call one service, serialize.

Approvals are a person's act: with a staff session the signed-in user approves; with an API key
(which identifies the merchant, not a person) the body names the approving staff member
(`approver`), who must be one of the merchant's active staff.
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.http import Http404
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings

from apps.accounts.models import User
from apps.common import filters
from apps.common.api import MerchantAPIView, ObjectActionView, ObjectView
from apps.common.errors import ForbiddenError, ServiceError, rule_violation
from apps.common.fields import (
    CurrencyField,
    MinorUnitsField,
    MultiLineCharField,
    SingleLineCharField,
    StrictSerializerMixin,
)
from apps.common.idempotency import idempotency_key_parameter
from apps.orders.api import AccountInSerializer, masked_account
from apps.payouts.incidents import (
    incident_escalate,
    incident_freeze,
    incident_note,
    incident_open,
    incident_recall,
    incident_record_return,
    incident_resolve,
)
from apps.payouts.models import Approval, Disbursement, DisbursementEvent, Incident, IncidentStep, Kind, PrecheckResult
from apps.payouts.selectors import (
    disbursement_get_for_merchant,
    disbursement_list_for_merchant,
    incident_list_for_merchant,
)
from apps.payouts.services import payout_approve, payout_cancel, payout_create, payout_release, withdrawal_create

# --- input ----------------------------------------------------------------------------------------


class DestinationInSerializer(AccountInSerializer):
    country = SingleLineCharField(
        max_length=2,
        required=False,
        validators=[RegexValidator(r"^[A-Z]{2}$", "ISO 3166 alpha-2 code, upper case.")],
        help_text="Where the account is held (default: the platform's home country).",
    )
    currency = CurrencyField(required=False, help_text="The currency the account holds (default: the payout's).")


class SettlementLineSerializer(StrictSerializerMixin, serializers.Serializer):
    reference = SingleLineCharField(max_length=100)
    amount = MinorUnitsField()


class _MovementInSerializer(StrictSerializerMixin, serializers.Serializer):
    amount = MinorUnitsField()
    currency = CurrencyField()
    destination_account = DestinationInSerializer()
    source_currency = CurrencyField(
        required=False, help_text="Currency of the balance paid from (default: `currency`); differing means FX."
    )
    device_id = SingleLineCharField(max_length=100, required=False, allow_blank=True)
    ip = serializers.IPAddressField(required=False, allow_null=True)


class PayoutInSerializer(_MovementInSerializer):
    reference = SingleLineCharField(max_length=100)
    settlement_lines = serializers.ListField(
        child=SettlementLineSerializer(),
        required=False,
        max_length=500,
        help_text="The settlement lines this payout settles; the amount must equal their sum (converted).",
    )


class WithdrawalInSerializer(_MovementInSerializer):
    customer = SingleLineCharField(max_length=100, help_text="The customer's external_id.")


class ApproveSerializer(StrictSerializerMixin, serializers.Serializer):
    note = MultiLineCharField(max_length=2000, required=False, allow_blank=True)
    otp_token = serializers.CharField(
        max_length=8,
        required=False,
        allow_blank=True,
        validators=[RegexValidator(r"^[0-9]{6,8}$", "The code is 6–8 digits.")],
        help_text="The current code of your authenticator: required on the approval that completes a "
        "payout or withdrawal at or above PAYOUT_LARGE_AMOUNT.",
    )


class NoteSerializer(StrictSerializerMixin, serializers.Serializer):
    note = MultiLineCharField(max_length=2000, required=False, allow_blank=True)


# --- output ---------------------------------------------------------------------------------------


class DisbursementEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = DisbursementEvent
        fields = (
            "id",
            "code",
            "from_status",
            "to_status",
            "message_key",
            "responsible_party",
            "actor",
            "detail",
            "created_at",
        )
        read_only_fields = fields


class PrecheckSerializer(serializers.ModelSerializer):
    class Meta:
        model = PrecheckResult
        fields = ("name", "result", "detail", "responsible_party", "created_at")
        read_only_fields = fields


class ApprovalSerializer(serializers.ModelSerializer):
    approver = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Approval
        fields = ("approver", "note", "created_at")
        read_only_fields = fields


class FxSerializer(serializers.Serializer):
    pair = serializers.CharField(help_text='"BASE:QUOTE", the direction converted.')
    rate = serializers.CharField(help_text="Units of QUOTE per unit of BASE.")
    rate_source = serializers.CharField()
    rounding = serializers.CharField()


class DestinationOutSerializer(serializers.Serializer):
    holder_name = serializers.CharField()
    bank = serializers.CharField()
    account_number = serializers.CharField(help_text="Masked: **** and the last four digits.")
    country = serializers.CharField()
    currency = serializers.CharField()


class _DisbursementOutSerializer(serializers.ModelSerializer):
    destination_account = serializers.SerializerMethodField()
    fx = serializers.SerializerMethodField()

    class Meta:
        model = Disbursement
        fields = (
            "id",
            "amount",
            "currency",
            "source_amount",
            "source_currency",
            "fx",
            "status",
            "destination_account",
            "review_reasons",
            "required_approvals",
            "hold_reason",
            "failure_code",
            "responsible_party",
            "retry_count",
            "created_by",
            "submitted_at",
            "paid_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    @extend_schema_field(DestinationOutSerializer)
    def get_destination_account(self, d: Disbursement) -> dict:
        account = masked_account(d.destination_account) or {}
        return {**account, "country": d.destination_country, "currency": d.destination_currency}

    @extend_schema_field(FxSerializer(allow_null=True))
    def get_fx(self, d: Disbursement) -> dict | None:
        if d.fx_rate is None:
            return None
        return {
            "pair": d.fx_pair,
            "rate": str(d.fx_rate.normalize()),
            "rate_source": d.fx_rate_source,
            "rounding": d.fx_rounding,
        }


class PayoutOutSerializer(_DisbursementOutSerializer):
    class Meta(_DisbursementOutSerializer.Meta):
        fields = ("reference", *_DisbursementOutSerializer.Meta.fields)
        read_only_fields = fields


class WithdrawalOutSerializer(_DisbursementOutSerializer):
    customer = serializers.SlugRelatedField(slug_field="external_id", read_only=True)

    class Meta(_DisbursementOutSerializer.Meta):
        fields = ("customer", *_DisbursementOutSerializer.Meta.fields)
        read_only_fields = fields


# What a detail response adds to a list item: the timeline, the pre-check results, the approvals
# (a comment, not a docstring: the schema would show it as the description of both detail shapes).
DETAIL_FIELDS = ("events", "prechecks", "approvals")


class _DetailFields(serializers.Serializer):
    events = DisbursementEventSerializer(many=True, read_only=True)
    prechecks = PrecheckSerializer(many=True, read_only=True)
    approvals = ApprovalSerializer(many=True, read_only=True)


class PayoutDetailSerializer(PayoutOutSerializer, _DetailFields):
    class Meta(PayoutOutSerializer.Meta):
        fields = (*PayoutOutSerializer.Meta.fields, *DETAIL_FIELDS)
        read_only_fields = fields


class WithdrawalDetailSerializer(WithdrawalOutSerializer, _DetailFields):
    class Meta(WithdrawalOutSerializer.Meta):
        fields = (*WithdrawalOutSerializer.Meta.fields, *DETAIL_FIELDS)
        read_only_fields = fields


# --- views: payouts and withdrawals ---------------------------------------------------------------


class _KindMixin:
    kind = Kind.PAYOUT
    out_serializer: type[serializers.Serializer] = PayoutOutSerializer
    response_serializer: type[serializers.Serializer] = PayoutDetailSerializer

    def get_object(self, pk: int) -> Disbursement:
        d = disbursement_get_for_merchant(merchant=self.merchant, kind=self.kind, pk=pk)
        if d is None:
            raise Http404
        return d


class DisbursementFilters(filters.QueryFilters):
    status = filters.choice(Disbursement.Status.values)


class PayoutListCreateView(_KindMixin, ObjectView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(responses=PayoutOutSerializer(many=True), parameters=[DisbursementFilters])
    def get(self, request):
        rows = disbursement_list_for_merchant(merchant=self.merchant, kind=self.kind)
        if wanted := DisbursementFilters.parse(request).get("status"):
            rows = rows.filter(status=wanted)
        return self.paginated(rows, self.out_serializer)

    @extend_schema(
        request=PayoutInSerializer,
        responses={201: PayoutDetailSerializer},
        parameters=[idempotency_key_parameter("payout")],
    )
    def post(self, request):
        def create() -> Response:
            d = payout_create(merchant=self.merchant, actor=self.actor, **self.body(PayoutInSerializer))
            return self.respond(d.pk, status_code=status.HTTP_201_CREATED)

        return self.idempotent(endpoint="payouts.create", handler=create)


class WithdrawalListCreateView(PayoutListCreateView):
    kind = Kind.WITHDRAWAL
    out_serializer = WithdrawalOutSerializer
    response_serializer = WithdrawalDetailSerializer

    @extend_schema(responses=WithdrawalOutSerializer(many=True), parameters=[DisbursementFilters])
    def get(self, request):
        return super().get(request)

    @extend_schema(
        request=WithdrawalInSerializer,
        responses={201: WithdrawalDetailSerializer},
        parameters=[idempotency_key_parameter("withdrawal")],
    )
    def post(self, request):
        def create() -> Response:
            fields = self.body(WithdrawalInSerializer)
            d = withdrawal_create(
                merchant=self.merchant, customer_external_id=fields.pop("customer"), actor=self.actor, **fields
            )
            return self.respond(d.pk, status_code=status.HTTP_201_CREATED)

        return self.idempotent(endpoint="withdrawals.create", handler=create)


class PayoutDetailView(_KindMixin, ObjectView):
    @extend_schema(responses=PayoutDetailSerializer)
    def get(self, request, pk: int):
        return self.respond(pk)


class WithdrawalDetailView(PayoutDetailView):
    kind = Kind.WITHDRAWAL
    out_serializer = WithdrawalOutSerializer
    response_serializer = WithdrawalDetailSerializer

    @extend_schema(responses=WithdrawalDetailSerializer)
    def get(self, request, pk: int):
        return super().get(request, pk)


def _approver(request) -> User:
    """Approving is a person's act: the signed-in staff member. An API key identifies a merchant,
    not a person, so it cannot approve (one key could otherwise play both checkers)."""
    if not isinstance(request.user, User):
        raise ForbiddenError(
            _(
                "Approvals come from a signed-in staff member, not an API key: approve in the console "
                "(/console/approvals/), or call this endpoint with a staff session."
            ),
            code="approval_needs_staff_session",
        )
    return request.user


class PayoutApproveView(_KindMixin, ObjectActionView):
    action_name = "approve"
    request_serializer = ApproveSerializer

    def act(self, d: Disbursement) -> None:
        approver = _approver(self.request)
        payout_approve(disbursement_id=d.pk, approver=approver, **self.fields())


class _PayoutNoteStepView(_KindMixin, ObjectActionView):
    request_serializer = NoteSerializer

    def act(self, d: Disbursement) -> None:
        self.step(disbursement_id=d.pk, actor=self.actor, **self.fields())


class PayoutCancelView(_PayoutNoteStepView):
    action_name = "cancel"
    step = staticmethod(payout_cancel)


class PayoutReleaseView(_PayoutNoteStepView):
    action_name = "release"
    step = staticmethod(payout_release)


def _withdrawal_view(view: type) -> type:
    """The same action on /withdrawals/{id}/…, answered (and documented) with the withdrawal's shape."""

    class View(view):
        kind = Kind.WITHDRAWAL
        response_serializer = WithdrawalDetailSerializer

    View.__name__ = View.__qualname__ = view.__name__.replace("Payout", "Withdrawal")
    return View


WithdrawalApproveView = _withdrawal_view(PayoutApproveView)
WithdrawalCancelView = _withdrawal_view(PayoutCancelView)
WithdrawalReleaseView = _withdrawal_view(PayoutReleaseView)

# The actions on one payout or withdrawal, each at /payouts/{id}/<its action_name> (apps.payouts.urls).
PAYOUT_ACTIONS = (PayoutApproveView, PayoutCancelView, PayoutReleaseView)
WITHDRAWAL_ACTIONS = (WithdrawalApproveView, WithdrawalCancelView, WithdrawalReleaseView)


# --- incidents ------------------------------------------------------------------------------------


class IncidentStepSerializer(serializers.ModelSerializer):
    # Plain text in the schema: an enum would collide with the risk rules' "action" enum.
    action = serializers.CharField(
        read_only=True,
        help_text="opened, freeze, recall_requested, recall_succeeded, "
        "recall_failed, negotiation, funds_returned, legal_escalation, note, resolved",
    )

    class Meta:
        model = IncidentStep
        fields = ("id", "action", "actor", "notes", "amount", "detail", "created_at")
        read_only_fields = fields


class IncidentSerializer(serializers.ModelSerializer):
    payout = serializers.SerializerMethodField()
    withdrawal = serializers.SerializerMethodField()

    class Meta:
        model = Incident
        fields = (
            "id",
            "payout",
            "withdrawal",
            "status",
            "summary",
            "category",
            "root_cause",
            "amount_at_risk",
            "amount_recovered",
            "currency",
            "opened_by",
            "resolved_by",
            "created_at",
            "resolved_at",
        )
        read_only_fields = fields

    def get_payout(self, incident: Incident) -> int | None:
        return incident.disbursement_id if incident.disbursement.kind == Kind.PAYOUT else None

    def get_withdrawal(self, incident: Incident) -> int | None:
        return incident.disbursement_id if incident.disbursement.kind == Kind.WITHDRAWAL else None


class IncidentDetailSerializer(IncidentSerializer):
    steps = IncidentStepSerializer(many=True, read_only=True)

    class Meta(IncidentSerializer.Meta):
        fields = (*IncidentSerializer.Meta.fields, "steps")
        read_only_fields = fields


class IncidentInSerializer(StrictSerializerMixin, serializers.Serializer):
    payout = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    withdrawal = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    summary = MultiLineCharField(max_length=2000)

    def validate(self, attrs):
        if ("payout" in attrs) == ("withdrawal" in attrs):
            raise rule_violation(_("Give exactly one of payout or withdrawal."))
        return attrs


class IncidentNotesSerializer(StrictSerializerMixin, serializers.Serializer):
    notes = MultiLineCharField(max_length=4000, required=False, allow_blank=True)


class IncidentReturnSerializer(IncidentNotesSerializer):
    amount = MinorUnitsField()


class IncidentResolveSerializer(IncidentNotesSerializer):
    root_cause = MultiLineCharField(max_length=4000)
    category = serializers.ChoiceField(choices=Incident.Category.choices)


class IncidentFilters(filters.QueryFilters):
    q = filters.text(max_length=200, help_text="Search summary, root cause, category and step notes.")
    status = filters.choice(Incident.Status.values)
    category = filters.choice(Incident.Category.values)


class IncidentListCreateView(MerchantAPIView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(responses=IncidentSerializer(many=True), parameters=[IncidentFilters])
    def get(self, request):
        rows = incident_list_for_merchant(merchant=self.merchant, **IncidentFilters.parse(request))
        return self.paginated(rows, IncidentSerializer)

    @extend_schema(request=IncidentInSerializer, responses={201: IncidentDetailSerializer})
    def post(self, request):
        body = self.body(IncidentInSerializer)
        kind = Kind.PAYOUT if "payout" in body else Kind.WITHDRAWAL
        d = disbursement_get_for_merchant(merchant=self.merchant, kind=kind, pk=body[kind])
        if d is None:
            raise ServiceError(
                format_lazy(_("Unknown {kind}."), kind=kind),
                fields={kind: [format_lazy(_("No such {kind}."), kind=kind)]},
            )
        incident = incident_open(disbursement_id=d.pk, summary=body["summary"], actor=self.actor)
        return Response(IncidentDetailSerializer(incident).data, status=status.HTTP_201_CREATED)


class _IncidentView(ObjectView):
    response_serializer = IncidentDetailSerializer

    def get_object(self, pk: int) -> Incident:
        incident = Incident.objects.filter(merchant=self.merchant, pk=pk).select_related("disbursement").first()
        if incident is None:
            raise Http404
        return incident


class _IncidentStepView(_IncidentView, ObjectActionView):
    """A step on one incident: `step` is the incident service it calls, with the body's fields."""

    request_serializer = IncidentNotesSerializer

    def act(self, incident: Incident) -> None:
        self.step(incident_id=incident.pk, actor=self.actor, merchant=self.merchant, **self.fields())


class IncidentDetailView(_IncidentView):
    @extend_schema(responses=IncidentDetailSerializer)
    def get(self, request, pk: int):
        return self.respond(pk)


class IncidentFreezeView(_IncidentStepView):
    """Hold the movement if it has not left, freeze the destination account and receiving customers."""

    action_name = "freeze"
    step = staticmethod(incident_freeze)


class IncidentRecallView(_IncidentStepView):
    """Ask the channel to pull the money back."""

    action_name = "recall"
    step = staticmethod(incident_recall)


class IncidentNegotiationView(_IncidentStepView):
    """Record a step of the negotiation with the recipient."""

    action_name = "negotiation"
    step = staticmethod(incident_note)


class IncidentReturnView(_IncidentView):
    """Money the recipient sent back (a negotiated return): posted back to the source balance."""

    action_name = "returns"

    @extend_schema(
        request=IncidentReturnSerializer,
        responses=IncidentDetailSerializer,
        parameters=[idempotency_key_parameter("returned amount")],
    )
    def post(self, request, pk: int):
        incident = self.get_object(pk)

        def record() -> Response:
            body = self.body(IncidentReturnSerializer)
            incident_record_return(
                incident_id=incident.pk,
                amount=body["amount"],
                actor=self.actor,
                notes=body.get("notes", ""),
                merchant=self.merchant,
            )
            return self.respond(pk)

        return self.idempotent(endpoint=f"incidents.{pk}.returns", handler=record)


class IncidentEscalateView(_IncidentStepView):
    """Hand the incident to legal."""

    action_name = "escalate"
    step = staticmethod(incident_escalate)


class IncidentResolveView(_IncidentStepView):
    """Close the incident with its root cause and category (it joins the case library)."""

    action_name = "resolve"
    request_serializer = IncidentResolveSerializer
    step = staticmethod(incident_resolve)


# The actions on one incident, each at /incidents/{id}/<its action_name> (apps.payouts.urls).
INCIDENT_ACTIONS = (
    IncidentFreezeView,
    IncidentRecallView,
    IncidentNegotiationView,
    IncidentReturnView,
    IncidentEscalateView,
    IncidentResolveView,
)

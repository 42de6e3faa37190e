"""Reconciliation API: runs against channel statements, for platform operators only.

Reconciliation is platform-wide data (one statement carries every merchant's refunds and payouts),
so these endpoints are not merchant-scoped: they answer a signed-in platform operator (staff with no
merchant, `IsPlatformOperator`) and refuse every API key and merchant staff member with 403.

    GET  /api/v1/reconciliations        filter date, source, status, current=true|false
    GET  /api/v1/reconciliations/{id}   the run and its items (filter kind; limit/offset page the items)
    POST /api/v1/reconciliations        {"date", "source"} pulls the registered source on a worker (202);
                                        with a CSV statement (JSON "statement_csv" text, or a multipart
                                        file "statement") imports it and reconciles at once (201)
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.settings import api_settings

from apps.accounts.permissions import IsPlatformOperator
from apps.common import filters
from apps.common.api import MerchantAPIView
from apps.common.errors import PayloadTooLargeError, ServiceError
from apps.common.fields import MultiLineCharField, StrictSerializerMixin
from apps.common.parsers import StrictJSONParser
from apps.ledger.models import Reconciliation, ReconciliationItem
from apps.ledger.reconciliation import KINDS
from apps.ledger.selectors import reconciliation_list
from apps.ledger.services import reconciliation_run
from apps.ledger.statements import SOURCE_NAME, StatementFormatError, parse_statement_csv, statement_source_get
from apps.ledger.tasks import reconciliation_run_task

# Room for the form fields and part headers around a statement file of the largest allowed size.
MULTIPART_OVERHEAD = 64 * 1024


def _actor(request) -> str:
    return f"api:{request.user.get_username()}"


class ReconciliationItemSerializer(serializers.ModelSerializer):
    difference = serializers.SerializerMethodField(help_text="statement_amount − platform_amount, when both exist.")

    class Meta:
        model = ReconciliationItem
        fields = (
            "id",
            "kind",
            "severity",
            "reference",
            "direction",
            "currency",
            "statement_amount",
            "platform_amount",
            "difference",
            "statement_date",
            "platform_date",
            "line_ids",
            "ledger_references",
            "detail",
        )
        read_only_fields = fields

    def get_difference(self, item: ReconciliationItem) -> int | None:
        if item.statement_amount is None or item.platform_amount is None:
            return None
        return item.statement_amount - item.platform_amount


class ReconciliationSerializer(serializers.ModelSerializer):
    counts = serializers.SerializerMethodField()

    class Meta:
        model = Reconciliation
        fields = (
            "id",
            "date",
            "source",
            "version",
            "is_current",
            "status",
            "severity",
            "amount_tolerance",
            "date_tolerance_days",
            "statement_lines",
            "platform_records",
            "counts",
            "totals",
            "error",
            "actor",
            "started_at",
            "finished_at",
        )
        read_only_fields = fields

    @extend_schema_field({"type": "object", "properties": {kind: {"type": "integer"} for kind in KINDS}})
    def get_counts(self, run: Reconciliation) -> dict[str, int]:
        return {kind: getattr(run, f"{kind}_count") for kind in KINDS}


class ReconciliationItemPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ReconciliationItemSerializer(many=True)


class ReconciliationDetailSerializer(ReconciliationSerializer):
    """The run, and one page of its items (documentation shape; built by the view)."""

    items = ReconciliationItemPageSerializer()

    class Meta(ReconciliationSerializer.Meta):
        fields = (*ReconciliationSerializer.Meta.fields, "items")
        read_only_fields = fields


class ReconciliationRunSerializer(StrictSerializerMixin, serializers.Serializer):
    date = serializers.DateField(input_formats=["%Y-%m-%d"])
    source = serializers.RegexField(SOURCE_NAME.pattern, max_length=32)
    statement_csv = MultiLineCharField(
        required=False,
        trim_whitespace=False,
        max_length=None,  # the JSON body is already capped at DATA_UPLOAD_MAX_MEMORY_SIZE
        help_text="A CSV statement as text (format: apps/ledger/statements.py).",
    )
    statement = serializers.FileField(required=False, help_text="A CSV statement file (multipart).")

    def validate(self, attrs):
        if "statement_csv" in attrs and "statement" in attrs:
            raise ValidationError({"statement": [_("Send statement_csv or a statement file, not both.")]})
        return attrs


class _PlatformView(MerchantAPIView):
    """Borrows the query-string and paging helpers; the permission is platform operators only."""

    permission_classes = [IsPlatformOperator]


def _statement_text(data: dict) -> str | bytes | None:
    if "statement_csv" in data:
        return data["statement_csv"]
    upload = data.get("statement")
    if upload is None:
        return None
    if upload.size > settings.RECONCILIATION_CSV_MAX_BYTES:
        raise PayloadTooLargeError(
            format_lazy(_("Statement files are limited to {value} bytes."), value=settings.RECONCILIATION_CSV_MAX_BYTES)
        )
    return upload.read()


class ReconciliationFilters(filters.QueryFilters):
    date = filters.date()
    source = filters.text(max_length=32)
    status = filters.choice(Reconciliation.Status.values)
    current = filters.boolean(help_text="true: the latest run of its day and source.")


class ReconciliationItemFilters(filters.QueryFilters):
    kind = filters.choice(KINDS)


class ReconciliationListCreateView(_PlatformView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS
    parser_classes = [StrictJSONParser, MultiPartParser]

    @extend_schema(
        responses=ReconciliationSerializer(many=True),
        parameters=[ReconciliationFilters],
    )
    def get(self, request):
        wanted = ReconciliationFilters.parse(request)
        queryset = reconciliation_list(day=wanted.get("date"), source=wanted.get("source"), status=wanted.get("status"))
        if "current" in wanted:
            queryset = queryset.filter(is_current=wanted["current"])
        return self.paginated(queryset, ReconciliationSerializer)

    @extend_schema(
        request={
            "application/json": ReconciliationRunSerializer,
            "multipart/form-data": ReconciliationRunSerializer,
        },
        responses={
            201: OpenApiResponse(ReconciliationSerializer, description="Statement uploaded and reconciled."),
            202: OpenApiResponse(
                inline_serializer(
                    "ReconciliationQueued",
                    {
                        "status": serializers.CharField(),
                        "date": serializers.DateField(),
                        "source": serializers.CharField(),
                    },
                ),
                description="The source's statement is pulled and reconciled on a worker.",
            ),
        },
    )
    def post(self, request):
        # Refuse an oversized upload before it is spooled to disk (JSON bodies are capped by the parser).
        declared = request.META.get("CONTENT_LENGTH") or ""
        if declared.isdigit() and int(declared) > settings.RECONCILIATION_CSV_MAX_BYTES + MULTIPART_OVERHEAD:
            raise PayloadTooLargeError()
        data = ReconciliationRunSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        day, source = data.validated_data["date"], data.validated_data["source"]
        if day > dt.datetime.now(tz=dt.UTC).date():
            raise ServiceError(
                _("Cannot reconcile a day that has not begun."), fields={"date": [_("Is in the future.")]}
            )
        text = _statement_text(data.validated_data)
        if text is None:
            if statement_source_get(source) is None:
                raise ServiceError(
                    format_lazy(
                        _("No statement source {value} is registered; upload the statement instead."),
                        value=repr(source),
                    ),
                    code="unknown_source",
                    fields={"source": [_("Not a registered statement source.")]},
                )
            # A pull is network I/O to a bank: a worker does it, never the web request.
            reconciliation_run_task.delay(day.isoformat(), source, actor=_actor(request))
            return Response(
                {"status": "queued", "date": day.isoformat(), "source": source}, status=status.HTTP_202_ACCEPTED
            )
        try:
            lines = parse_statement_csv(text)
        except StatementFormatError as exc:
            raise ServiceError(str(exc), code="statement_invalid", fields=exc.errors) from None
        run = reconciliation_run(date=day, source=source, lines=lines, actor=_actor(request))
        return Response(ReconciliationSerializer(run).data, status=status.HTTP_201_CREATED)


class ReconciliationDetailView(_PlatformView):
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(
        responses=ReconciliationDetailSerializer,
        parameters=[ReconciliationItemFilters],
    )
    def get(self, request, pk: int):
        run = get_object_or_404(Reconciliation.objects.all(), pk=pk)
        items = run.items.order_by("id")
        if kind := ReconciliationItemFilters.parse(request).get("kind"):
            items = items.filter(kind=kind)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(items, request, view=self)
        body = ReconciliationSerializer(run).data
        body["items"] = paginator.get_paginated_response(ReconciliationItemSerializer(page, many=True).data).data
        return Response(body)

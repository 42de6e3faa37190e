from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.settings import api_settings

from apps.common.api import MerchantAPIView
from apps.risk.models import Case


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


class CaseListView(MerchantAPIView):
    """The review queue: what a person has to decide, oldest first."""

    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(
        responses=CaseOutSerializer(many=True),
        parameters=[OpenApiParameter("status", str), OpenApiParameter("subject_type", str)],
    )
    def get(self, request):
        queryset = Case.objects.filter(merchant=self.merchant).select_related("assignee").order_by("created_at", "id")
        if wanted := self.query_text("status"):
            queryset = queryset.filter(status=wanted)
        if subject_type := self.query_text("subject_type"):
            queryset = queryset.filter(subject_type=subject_type)
        return self.paginated(queryset, CaseOutSerializer)

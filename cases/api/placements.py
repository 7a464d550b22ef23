"""Placement API: upload a file (202 + batch id), read a batch's state and row errors, recall accounts,
export results. Lender users upload, recall and export for their own lender and list and read only its
batches (another lender's is a 404); supervisors list and read every lender's batches."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import translation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, parsers, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied as DRFPermissionDenied
from rest_framework.response import Response

from cases.importers import recall as recalls
from cases.importers import selectors, services
from cases.importers.forms import ENCODING_CHOICES
from cases.models import PlacementBatch, PlacementRowError
from compliance.audit import audit_checkpoint_export

MAX_ERRORS_IN_RESPONSE = 1000


class PlacementUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    kind = serializers.ChoiceField(choices=PlacementBatch.Kind.choices, default=PlacementBatch.Kind.PLACEMENT)
    mode = serializers.ChoiceField(choices=PlacementBatch.Mode.choices, default=PlacementBatch.Mode.PARTIAL)
    encoding = serializers.ChoiceField(choices=[c for c, _label in ENCODING_CHOICES] + ["gbk"], default="", allow_blank=True)


class RowErrorSerializer(serializers.ModelSerializer):
    class Meta:
        model = PlacementRowError
        fields = ["line", "column", "reason"]


class PlacementBatchSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="placement-detail")
    queued = serializers.SerializerMethodField(help_text="pending, its job waiting for the broker (it runs once the broker is back)")

    class Meta:
        model = PlacementBatch
        fields = [
            "id", "url", "kind", "mode", "original_name", "sha256", "encoding", "state", "queued", "total_rows",
            "processed_rows", "created_count", "updated_count", "unchanged_count", "error_count", "error_message",
            "report", "created_at", "started_at", "finished_at",
        ]
        read_only_fields = fields

    def get_queued(self, obj) -> bool:
        return selectors.batch_is_queued(batch=obj)


class PlacementBatchDetailSerializer(PlacementBatchSerializer):
    row_errors = serializers.SerializerMethodField()

    class Meta(PlacementBatchSerializer.Meta):
        fields = [*PlacementBatchSerializer.Meta.fields, "row_errors"]
        read_only_fields = fields

    def get_row_errors(self, obj) -> list[dict]:
        rows = obj.row_errors.order_by("line", "id")[:MAX_ERRORS_IN_RESPONSE]
        return RowErrorSerializer(rows, many=True).data


class RecallSerializer(serializers.Serializer):
    external_refs = serializers.ListField(child=serializers.CharField(max_length=64), allow_empty=False,
                                          max_length=recalls.MAX_RECALL_REFS)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class PlacementViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Placement and recall files: the caller's lender's, or every lender's for a supervisor."""

    parser_classes = [parsers.MultiPartParser, parsers.FormParser, parsers.JSONParser]

    def get_queryset(self):
        return selectors.placement_batches_for_user(user=self.request.user)

    def get_serializer_class(self):
        return PlacementBatchDetailSerializer if self.action == "retrieve" else PlacementBatchSerializer

    def get_object(self):
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])

    def _require_lender(self):
        if not self.request.user.is_lender_user:
            raise DRFPermissionDenied("Only lender users place or recall accounts.")

    @extend_schema(request={"multipart/form-data": PlacementUploadSerializer},
                   responses={202: PlacementBatchSerializer, 400: OpenApiResponse(description="Bad input")})
    def create(self, request):
        """Upload a placement (or recall) file; it is processed in the background. Poll the returned URL."""
        self._require_lender()
        data = PlacementUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        batch = services.placement_batch_create(actor=request.user, language=translation.get_language(), **data.validated_data)
        body = PlacementBatchSerializer(batch, context={"request": request}).data
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})

    @extend_schema(request=RecallSerializer, responses={200: OpenApiTypes.OBJECT})
    @action(detail=False, methods=["post"])
    def recall(self, request):
        """Take accounts back now (up to 1000 references; upload a recall file for more)."""
        self._require_lender()
        data = RecallSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(recalls.accounts_recall(actor=request.user, refs=data.validated_data["external_refs"],
                                                 reason=data.validated_data["reason"]))

    @extend_schema(parameters=[OpenApiParameter("as", str, enum=["csv", "json"], description="csv (default) or json")],
                   responses={(200, "text/csv"): OpenApiTypes.BINARY, (200, "application/json"): {"type": "array", "items": {"type": "object"}}})
    @action(detail=False, methods=["get"])
    def results(self, request):
        """Collection results of every account of the caller's lender, streamed (CSV is formula-safe)."""
        self._require_lender()
        if request.query_params.get("as") == "json":
            response = StreamingHttpResponse(selectors.results_json(user=request.user), content_type="application/json")
        else:
            response = StreamingHttpResponse(selectors.results_csv(user=request.user), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = 'attachment; filename="results.csv"'
        if anchor := audit_checkpoint_export(lender_id=request.user.lender_id):
            response["X-Audit-Checkpoint"] = anchor  # as on the portal export: the lender's signed chain head
        return response

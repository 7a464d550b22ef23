"""``/api/v1/statements/``: a lender's remittance statements, listed and downloaded (JSON, CSV, PDF, XLSX).

Lender users see their lender's statements only (another lender's is a 404), supervisors every lender's; agents
are refused (403). ``?format=`` picks the download: DRF's own format negotiation is switched off here so that an
unknown format is a clear 400 and errors stay JSON whatever the format asked for.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from . import statements
from .models import Statement

FORMATS = ("json", "csv", "pdf", "xlsx")


class StatementSerializer(serializers.ModelSerializer):
    """``written_off_total``: settlements settled in the period less those reopened, reported to the lender; not
    part of ``amount_due`` (a write-off is not money due)."""

    # Plain strings: the choice enums would clash by name with other "kind"/"currency" fields in the schema.
    kind = serializers.CharField(read_only=True)
    currency = serializers.CharField(read_only=True)

    class Meta:
        model = Statement
        fields = ["id", "lender", "currency", "kind", "label", "period_start", "period_end", "remit_net",
                  "payments_count", "payments_total", "reversals_count", "reversals_total", "commission_total",
                  "amount_due", "settlements_count", "settlements_reopened_count", "written_off_total", "issued_at"]
        read_only_fields = fields


_FORBIDDEN = {403: OpenApiResponse(description="Only lender users and supervisors read statements")}
_FORMAT = OpenApiParameter("format", str, OpenApiParameter.QUERY, enum=list(FORMATS), required=False,
                           description="json (default): the statement's totals; csv, pdf or xlsx: the file.")


class StatementViewSet(viewsets.GenericViewSet):
    serializer_class = StatementSerializer

    def perform_content_negotiation(self, request, force=False):
        renderer = JSONRenderer()  # errors are JSON; files are returned as plain responses (see retrieve)
        return renderer, renderer.media_type

    def get_queryset(self):
        user = self.request.user
        if user.is_lender_user and user.lender_id:
            return statements.statements_for_lender(lender_id=user.lender_id)
        if user.is_supervisor:
            return Statement.objects.order_by("-period_end", "lender_id", "currency")
        return Statement.objects.none()

    def _forbidden(self, request) -> Response | None:
        user = request.user
        if not (user.is_supervisor or (user.is_lender_user and user.lender_id)):
            return Response({"detail": "Only lender users and supervisors read statements."},
                            status=status.HTTP_403_FORBIDDEN)
        return None

    @extend_schema(responses={200: StatementSerializer(many=True), **_FORBIDDEN})
    def list(self, request):
        """The statements of the caller's lender (supervisors: every lender's), latest period first."""
        if (refused := self._forbidden(request)) is not None:
            return refused
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(StatementSerializer(page, many=True).data)

    @extend_schema(parameters=[_FORMAT], responses={
        (200, "application/json"): StatementSerializer,
        (200, "text/csv"): OpenApiTypes.BINARY,
        (200, "application/pdf"): OpenApiTypes.BINARY,
        (200, statements.CONTENT_TYPES["xlsx"]): OpenApiTypes.BINARY,
        400: OpenApiResponse(description="Unknown format"),
        404: OpenApiResponse(description="No such statement, or another lender's"),
        **_FORBIDDEN})
    def retrieve(self, request, pk=None, format=None):  # noqa: A002 - DRF's name for a URL suffix (/1.csv)
        """One statement: its totals (JSON) or, with ``format=csv|pdf|xlsx``, the file to download."""
        if (refused := self._forbidden(request)) is not None:
            return refused
        if format is not None and format not in FORMATS:
            raise Http404  # an unknown suffix names no resource, as elsewhere in the API
        fmt = format or request.query_params.get("format", "json")
        if fmt not in FORMATS:
            return Response({"format": [f"Choose one of {', '.join(FORMATS)}."]}, status=status.HTTP_400_BAD_REQUEST)
        st = statements.statement_for_user(user=request.user, pk=int(pk))
        if st is None:
            raise Http404
        if fmt == "json":
            return Response(StatementSerializer(st).data)
        content, content_type, name = statements.statement_file(statement=st, fmt=fmt)
        response = HttpResponse(content, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

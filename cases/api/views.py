from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from cases import services
from cases.models import ContactAttempt
from cases.selectors import account_list_for_user
from compliance.selectors import contact_check, decision_as_dict

from .serializers import (
    AccountSerializer,
    ContactAttemptInputSerializer,
    ContactAttemptSerializer,
    ContactCheckQuerySerializer,
    DecisionSerializer,
)


class AccountViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Overdue accounts the caller may see (another lender's account is a 404)."""

    serializer_class = AccountSerializer

    def get_queryset(self):
        qs = account_list_for_user(user=self.request.user).order_by("id")
        ref = self.request.query_params.get("external_ref")
        if ref:
            qs = qs.filter(external_ref=ref)
        status_ = self.request.query_params.get("status")
        if status_:
            qs = qs.filter(status=status_)
        return qs

    @extend_schema(
        request=ContactAttemptInputSerializer,
        responses={201: ContactAttemptSerializer, 409: DecisionSerializer, 400: OpenApiResponse(description="Bad input")},
    )
    @action(detail=True, methods=["post"], url_path="contact-attempts")
    def contact_attempts(self, request, pk=None):
        """Record an outreach. It passes the compliance check first; a refusal is 409 and records nothing."""
        account = self.get_object()
        if request.user.is_lender_user:
            return Response({"detail": "Lender users cannot log outreach."}, status=status.HTTP_403_FORBIDDEN)
        data = ContactAttemptInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            attempt = services.contact_attempt_record(
                account=account, actor=request.user, source=ContactAttempt.Source.API, **data.validated_data
            )
        except services.ContactRefused as refused:
            return Response(refused.as_dict(), status=status.HTTP_409_CONFLICT)
        return Response(ContactAttemptSerializer(attempt).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[ContactCheckQuerySerializer],
        responses={200: DecisionSerializer},
    )
    @action(detail=True, methods=["get"], url_path="contact-check")
    def contact_check(self, request, pk=None):
        """Would this outreach be lawful now (or at ``at``)? Records nothing."""
        account = self.get_object()
        query = ContactCheckQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        decision = contact_check(
            account=account, channel=q["channel"], at=q.get("at") or timezone.now(),
            direction=q["direction"], party=q["party"], phone=q["phone"], collectors=q["collectors"],
        )
        return Response(decision_as_dict(decision))

    def get_object(self):
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])


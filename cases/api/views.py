from django.shortcuts import get_object_or_404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from cases import services
from cases.gate import contact_check
from cases.models import ContactAttempt
from cases.selectors import account_list_for_user, contact_attempt_for_user, contact_attempt_target
from compliance.selectors import decision_as_dict
from servicing import clock

from .filters import AccountFilter
from .serializers import (
    AccountSerializer,
    ContactAttemptInputSerializer,
    ContactAttemptSerializer,
    ContactCheckQuerySerializer,
    DecisionSerializer,
    OutreachCompleteSerializer,
    OutreachStartedSerializer,
    OutreachStartSerializer,
)


class AccountViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Overdue accounts the caller may see (another lender's account is a 404)."""

    serializer_class = AccountSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = AccountFilter

    def get_queryset(self):
        return account_list_for_user(user=self.request.user).order_by("id")

    @extend_schema(
        request=ContactAttemptInputSerializer,
        responses={201: ContactAttemptSerializer, 409: DecisionSerializer, 400: OpenApiResponse(description="Bad input"),
                   403: OpenApiResponse(description="Lender users cannot log outreach")},
    )
    @action(detail=True, methods=["post"], url_path="contact-attempts")
    def contact_attempts(self, request, pk=None):
        """Record a contact with its outcome.

        Present-time outreach (no ``occurred_at``, or within 5 minutes of now) passes the compliance check
        first: a refusal is 409 and records nothing. A contact that already happened (``occurred_at`` older
        than that, or any inbound contact) is judged by the policy in force at its time and always stored:
        201, with ``breach`` listing the rules it broke (it is flagged and opens a supervisor incident).
        ``accounts`` names further debts of the same borrower the contact was about (it counts for each).
        """
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
        request=OutreachStartSerializer,
        responses={201: OutreachStartedSerializer, 409: DecisionSerializer, 400: OpenApiResponse(description="Bad input"),
                   403: OpenApiResponse(description="Lender users cannot start outreach")},
    )
    @action(detail=True, methods=["post"], url_path="outreach")
    def outreach(self, request, pk=None):
        """Start an outreach now: the gate decides before the act. Allowed: 201 with the attempt in state
        ``started`` (it counts toward caps at once) and ``target``, the full number or address. Refused: 409.
        Complete it with ``POST /api/v1/contact-attempts/{id}/complete/``; left open 30 minutes, it closes as
        ``unreported`` and still counts as placed."""
        account = self.get_object()
        if request.user.is_lender_user:
            return Response({"detail": "Lender users cannot start outreach."}, status=status.HTTP_403_FORBIDDEN)
        data = OutreachStartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            attempt = services.contact_attempt_start(account=account, actor=request.user,
                                                     source=ContactAttempt.Source.API, **data.validated_data)
        except services.ContactRefused as refused:
            return Response(refused.as_dict(), status=status.HTTP_409_CONFLICT)
        attempt.target = contact_attempt_target(attempt=attempt, actor=request.user)
        return Response(OutreachStartedSerializer(attempt).data, status=status.HTTP_201_CREATED)

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
            account=account, channel=q["channel"], at=q.get("at") or clock.now(),
            direction=q["direction"], party=q["party"], phone=q["phone"], collectors=q["collectors"],
        )
        return Response(decision_as_dict(decision))

    def get_object(self):
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])



class ContactAttemptViewSet(viewsets.GenericViewSet):
    """Contact attempts on accounts the caller may see (another lender's attempt is a 404)."""

    serializer_class = ContactAttemptSerializer

    def get_queryset(self):
        return ContactAttempt.objects.none()

    @extend_schema(request=OutreachCompleteSerializer,
                   responses={200: ContactAttemptSerializer, 400: OpenApiResponse(description="Bad input"),
                              403: OpenApiResponse(description="Lender users cannot log outreach")})
    @action(detail=True, methods=["post"], url_path="complete")
    def complete(self, request, pk=None):
        """Give a started outreach its outcome (it passed the gate for any outcome when it started)."""
        attempt = contact_attempt_for_user(user=request.user, attempt_id=int(pk))
        if request.user.is_lender_user:
            return Response({"detail": "Lender users cannot log outreach."}, status=status.HTTP_403_FORBIDDEN)
        data = OutreachCompleteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        attempt = services.contact_attempt_complete(attempt=attempt, actor=request.user, **data.validated_data)
        return Response(ContactAttemptSerializer(attempt).data)

"""``/api/v1/payments/``: lenders report payments the borrower made to them ("the borrower paid us") and
reversals (bounced, charged back), each idempotent by the lender's external reference. Thin: the work is in
``finance.services``; scoping (another lender's account or payment is a 404) in the selectors."""

from __future__ import annotations

from decimal import Decimal

from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from cases.models import CURRENCIES, Payment
from cases.selectors import account_list_for_user

from . import services
from .models import PaymentReversal
from .selectors import payment_for_user_by_ref


class PaymentReportSerializer(serializers.Serializer):
    account = serializers.IntegerField(required=False, help_text="The account id; or give account_ref.")
    account_ref = serializers.CharField(required=False, max_length=64, help_text="The lender's account reference.")
    external_ref = serializers.CharField(max_length=64, help_text="The lender's reference of this payment (idempotency key).")
    amount = serializers.DecimalField(max_digits=14, decimal_places=2, min_value=Decimal("0.01"))
    currency = serializers.ChoiceField(choices=CURRENCIES)
    paid_at = serializers.DateTimeField()
    method = serializers.CharField(max_length=30, required=False, default="", allow_blank=True)

    def validate(self, attrs):
        if ("account" in attrs) == ("account_ref" in attrs):
            raise serializers.ValidationError({"account": _("Give exactly one of account and account_ref.")})
        return attrs


class AllocationSerializer(serializers.Serializer):
    costs = serializers.DecimalField(max_digits=14, decimal_places=2)
    fees = serializers.DecimalField(max_digits=14, decimal_places=2)
    interest = serializers.DecimalField(max_digits=14, decimal_places=2)
    principal = serializers.DecimalField(max_digits=14, decimal_places=2)
    unapplied = serializers.DecimalField(max_digits=14, decimal_places=2)
    order = serializers.ListField(child=serializers.CharField())


class PaymentSerializer(serializers.ModelSerializer):
    external_ref = serializers.CharField(source="reference", read_only=True)
    allocation = AllocationSerializer(read_only=True)
    reversed = serializers.SerializerMethodField()

    class Meta:
        model = Payment
        fields = ["id", "account", "external_ref", "amount", "currency", "paid_at", "method", "allocation", "reversed"]
        read_only_fields = fields

    def get_reversed(self, obj) -> bool:
        return PaymentReversal.objects.filter(pk=obj.pk).exists()


class ReversalInputSerializer(serializers.Serializer):
    external_ref = serializers.CharField(max_length=64, help_text="The reference the payment was reported under.")
    reason = serializers.ChoiceField(choices=PaymentReversal.Reason.choices)
    note = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


class ReversalSerializer(serializers.ModelSerializer):
    external_ref = serializers.CharField(source="payment.reference", read_only=True)

    class Meta:
        model = PaymentReversal
        fields = ["payment", "external_ref", "amount", "currency", "reason", "note", "reversed_at"]
        read_only_fields = fields


_ERRORS = {400: OpenApiResponse(description="Bad input"), 404: OpenApiResponse(description="No such account or payment"),
           403: OpenApiResponse(description="Only lender users report payments")}


class PaymentViewSet(viewsets.GenericViewSet):
    serializer_class = PaymentSerializer

    def get_queryset(self):
        return Payment.objects.none()

    def _forbidden(self, request) -> Response | None:
        if not request.user.is_lender_user:
            return Response({"detail": "Only lender users report payments here."}, status=status.HTTP_403_FORBIDDEN)
        return None

    @extend_schema(request=PaymentReportSerializer,
                   responses={201: PaymentSerializer, 200: PaymentSerializer,
                              409: OpenApiResponse(description="The reference is used by a different payment"),
                              **_ERRORS})
    def create(self, request):
        """Report a payment the borrower made to the lender. 201 when recorded; 200 with the same payment when
        this ``external_ref`` was already reported with the same details; 409 when it was used for another."""
        if (refused := self._forbidden(request)) is not None:
            return refused
        data = PaymentReportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        accounts = account_list_for_user(user=request.user)
        account = (accounts.filter(pk=d["account"]) if "account" in d else accounts.filter(external_ref=d["account_ref"])).first()
        if account is None:
            raise Http404
        if d["currency"] != account.currency:
            return Response({"currency": [f"The account is kept in {account.currency}."]}, status=status.HTTP_400_BAD_REQUEST)
        try:
            payment, created = services.payment_receive(
                actor=request.user, account=account, external_ref=d["external_ref"], amount=d["amount"],
                paid_at=d["paid_at"], method=d["method"] or "lender_reported", source="lender_api")
        except services.PaymentConflict as conflict:
            return Response({"detail": str(conflict)}, status=status.HTTP_409_CONFLICT)
        return Response(PaymentSerializer(payment).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=ReversalInputSerializer, responses={201: ReversalSerializer, 200: ReversalSerializer, **_ERRORS})
    @action(detail=False, methods=["post"], url_path="reverse")
    def reverse(self, request):
        """Reverse a reported payment (bounced, charged back): its allocation, plan instalments and promise credit
        are undone. 201 when reversed; 200 with the same reversal when it already was."""
        if (refused := self._forbidden(request)) is not None:
            return refused
        data = ReversalInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        payment = payment_for_user_by_ref(user=request.user, external_ref=data.validated_data["external_ref"])
        if payment is None:
            raise Http404
        reversal, created = services.payment_reverse(payment=payment, actor=request.user,
                                                     reason=data.validated_data["reason"],
                                                     note=data.validated_data["note"])
        return Response(ReversalSerializer(reversal).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

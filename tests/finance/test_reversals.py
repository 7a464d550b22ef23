"""Reversals undo a payment's allocation, plan instalments and promise credit; payments reported by a lender
are idempotent by their external reference (service and ``/api/v1/payments/``)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from cases import services
from cases.models import Instalment, OverdueAccount, Payment, PromiseToPay, RepaymentPlan
from compliance.audit import audit_verify
from compliance.models import AuditEvent
from finance import services as finance
from finance.models import AccountBalance, PaymentAllocation, PaymentReversal, Settlement
from tests import factories as f
from tests.finance.conftest import parts_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    lender = f.lender()
    agent = f.user(role="agent")
    account = f.account(lender=lender, agent=agent, balance="1000.00")
    return {"lender": lender, "agent": agent, "account": account,
            "lender_user": f.user(role="lender", lender=lender)}


def test_reversal_undoes_parts_balance_instalments_plan_and_promise(world):
    acc, agent = world["account"], world["agent"]
    parts_set(acc, principal="700", interest="200", fees="100")
    today = timezone.localdate()
    # A plan for 30 % of the balance is a settlement: this lender's terms allow it without approval.
    finance.settlement_rule_publish(actor=None, lender_id=world["lender"].pk, min_percent={},
                                    default_min_percent=Decimal("30"), max_instalments=6,
                                    effective_from=timezone.now() - timedelta(hours=1))
    plan = services.repayment_plan_create(actor=agent, account=acc, total_amount=Decimal("300.00"),
                                          instalments=[(today + timedelta(days=3), Decimal("300.00"))])
    promise = services.promise_create(actor=agent, account=acc, amount=Decimal("300.00"), due_date=today + timedelta(days=3))
    payment = services.payment_record(actor=agent, account=acc, amount=Decimal("300.00"), paid_at=timezone.now())
    plan.refresh_from_db()
    promise.refresh_from_db()
    assert plan.status == RepaymentPlan.Status.COMPLETED and promise.status == PromiseToPay.Status.KEPT
    settlement = Settlement.objects.get(plan=plan)
    assert settlement.status == Settlement.Status.SETTLED and settlement.written_off == Decimal("700.00")

    reversal, created = finance.payment_reverse(payment=payment, actor=agent, reason="bounced")
    assert created
    acc.refresh_from_db()
    plan.refresh_from_db()
    promise.refresh_from_db()
    inst = Instalment.objects.get(plan=plan)
    assert acc.balance == Decimal("1000.00")
    assert AccountBalance.objects.get(account=acc).parts() == {
        "principal": Decimal("700"), "interest": Decimal("200"), "fees": Decimal("100"), "costs": Decimal("0")}
    assert (inst.paid_amount, inst.status) == (Decimal("0.00"), Instalment.Status.DUE)
    assert plan.status == RepaymentPlan.Status.ACTIVE
    assert (promise.paid_amount, promise.status) == (Decimal("0.00"), PromiseToPay.Status.OPEN)
    assert acc.status == OverdueAccount.Status.PLAN
    settlement.refresh_from_db()
    assert settlement.status == Settlement.Status.APPROVED and settlement.written_off == 0
    event = AuditEvent.objects.get(action="finance.payment.reversed", subject_id=str(payment.pk))
    assert event.data["reason"] == "bounced" and event.data["plan"]["to"] == "active"
    assert event.data["settlement_reopened"] == settlement.pk
    # Idempotent: a second reversal of the same payment changes nothing.
    again, created = finance.payment_reverse(payment=payment, actor=agent, reason="chargeback")
    assert not created and again.pk == reversal.pk and again.reason == "bounced"
    acc.refresh_from_db()
    assert acc.balance == Decimal("1000.00")
    assert AuditEvent.objects.filter(action="finance.payment.reversed").count() == 1
    assert audit_verify(record=False).ok


def test_reversing_a_payment_of_a_past_instalment_leaves_it_missed_and_the_plan_broken(world):
    acc, agent = world["account"], world["agent"]
    today = timezone.localdate()
    plan = RepaymentPlan.objects.create(account=acc, total_amount=Decimal("100.00"), currency="CNY")
    Instalment.objects.create(plan=plan, seq=1, due_date=today - timedelta(days=2), amount=Decimal("100.00"))
    payment = services.payment_record(actor=agent, account=acc, amount=Decimal("100.00"), paid_at=timezone.now())
    finance.payment_reverse(payment=payment, actor=agent, reason="chargeback")
    plan.refresh_from_db()
    assert Instalment.objects.get(plan=plan).status == Instalment.Status.MISSED
    assert plan.status == RepaymentPlan.Status.BROKEN


def test_payment_receive_is_idempotent_by_external_reference(world):
    acc, at, lu = world["account"], timezone.now(), world["lender_user"]
    p1, created = finance.payment_receive(actor=lu, account=acc, external_ref="LND-1", amount=Decimal("100.00"), paid_at=at)
    p2, again = finance.payment_receive(actor=lu, account=acc, external_ref="LND-1", amount=Decimal("100.00"), paid_at=at)
    assert created and not again and p1.pk == p2.pk
    assert Payment.objects.filter(account=acc).count() == 1
    acc.refresh_from_db()
    assert acc.balance == Decimal("900.00")
    with pytest.raises(finance.PaymentConflict):
        finance.payment_receive(actor=lu, account=acc, external_ref="LND-1", amount=Decimal("99.00"), paid_at=at)
    # The same reference at another lender is another payment.
    other = f.account(lender=f.lender(), balance="50.00")
    _p, created = finance.payment_receive(actor=lu, account=other, external_ref="LND-1", amount=Decimal("10.00"), paid_at=at)
    assert created


def _api(user) -> APIClient:
    c = APIClient()
    c.force_authenticate(user)
    return c


def test_payments_api_reports_replays_conflicts_and_is_scoped(world):
    acc, c = world["account"], _api(world["lender_user"])
    body = {"account_ref": acc.external_ref, "external_ref": "PAY-9", "amount": "120.50", "currency": "CNY",
            "paid_at": "2026-12-01T10:00:00+08:00"}
    first = c.post("/api/v1/payments/", body, format="json")
    assert first.status_code == 201, first.content
    assert first.json()["allocation"]["principal"] == "120.50"
    replay = c.post("/api/v1/payments/", body, format="json")
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]
    assert c.post("/api/v1/payments/", {**body, "amount": "1.00"}, format="json").status_code == 409
    assert c.post("/api/v1/payments/", {**body, "external_ref": "PAY-10", "currency": "USD"},
                  format="json").status_code == 400
    assert c.post("/api/v1/payments/", {**body, "amount": "-1"}, format="json").status_code == 400
    foreign = f.account(lender=f.lender(), balance="10.00")
    assert c.post("/api/v1/payments/", {**body, "account_ref": foreign.external_ref, "external_ref": "X"},
                  format="json").status_code == 404
    assert c.post("/api/v1/payments/", {**{k: v for k, v in body.items() if k != "account_ref"},
                                        "account": foreign.pk, "external_ref": "Y"}, format="json").status_code == 404
    assert _api(world["agent"]).post("/api/v1/payments/", body, format="json").status_code == 403
    assert PaymentAllocation.objects.filter(lender=world["lender"], external_ref="PAY-9").count() == 1

    rev = c.post("/api/v1/payments/reverse/", {"external_ref": "PAY-9", "reason": "bounced"}, format="json")
    assert rev.status_code == 201, rev.content
    assert c.post("/api/v1/payments/reverse/", {"external_ref": "PAY-9", "reason": "bounced"},
                  format="json").status_code == 200
    assert PaymentReversal.objects.count() == 1
    acc.refresh_from_db()
    assert acc.balance == Decimal("1000.00")
    # Another lender cannot see (or reverse) this lender's payment.
    stranger = f.user(role="lender", lender=foreign.lender)
    assert _api(stranger).post("/api/v1/payments/reverse/", {"external_ref": "PAY-9", "reason": "bounced"},
                               format="json").status_code == 404

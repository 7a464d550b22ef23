"""Repayment plans are kept by paying them: payments pay instalments oldest first and complete the plan,
and the daily ageing job only misses instalments of plans that are still active."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from cases import services
from cases.ageing import accounts_age
from cases.models import Instalment, PromiseToPay, RepaymentPlan
from compliance.audit import audit_verify
from compliance.models import AuditEvent
from finance import services as finance
from finance.models import Settlement
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan_world():
    lender = f.lender()
    agent = f.user(role="agent")
    account = f.account(lender=lender, agent=agent, balance="1000.00")
    # A plan for 60 % of the balance is a settlement (issue 13): this lender's terms let it be active at once.
    finance.settlement_rule_publish(actor=None, lender_id=lender.pk, min_percent={}, default_min_percent=Decimal("50"),
                                    max_instalments=6, effective_from=timezone.now() - timedelta(hours=1))
    today = timezone.localdate()
    first, second = today + timedelta(days=7), today + timedelta(days=37)
    plan = services.repayment_plan_create(
        actor=agent, account=account, total_amount=Decimal("600.00"),
        instalments=[(first, Decimal("300.00")), (second, Decimal("300.00"))],
    )
    return {"agent": agent, "account": account, "plan": plan, "first": first, "second": second}


def pay(world, amount: str):
    return services.payment_record(actor=world["agent"], account=world["account"], amount=Decimal(amount),
                                   paid_at=timezone.now(), method="bank transfer")


def instalments(plan: RepaymentPlan) -> list[tuple[str, Decimal]]:
    return [(i.status, i.paid_amount) for i in plan.instalments.order_by("seq")]


def test_paid_instalment_is_not_missed_and_paying_the_rest_completes_the_plan(plan_world):
    w, plan = plan_world, plan_world["plan"]
    payment = pay(w, "300.00")
    assert instalments(plan) == [("paid", Decimal("300.00")), ("due", Decimal("0"))]
    event = AuditEvent.objects.get(action="cases.payment.recorded", subject_id=str(payment.pk))
    assert event.data["plan"] == {
        "plan_id": plan.pk, "completed": False, "unapplied": "0.00",
        "instalments": [{"instalment_id": plan.instalments.get(seq=1).pk, "seq": 1, "applied": "300.00",
                         "paid_amount": "300.00", "status": "paid"}],
    }

    # The day after the first due date: nothing is missed, the plan and the account's status hold.
    result = accounts_age(today=w["first"] + timedelta(days=1))
    assert result["instalments_missed"] == 0
    plan.refresh_from_db()
    w["account"].refresh_from_db()
    assert plan.status == RepaymentPlan.Status.ACTIVE and w["account"].status == "plan"
    assert not AuditEvent.objects.filter(action__in=["cases.instalment.missed", "cases.plan.broken"]).exists()

    pay(w, "300.00")
    plan.refresh_from_db()
    assert plan.status == RepaymentPlan.Status.COMPLETED
    assert instalments(plan) == [("paid", Decimal("300.00")), ("paid", Decimal("300.00"))]
    assert AuditEvent.objects.filter(action="cases.repayment_plan.completed", subject_id=str(plan.pk)).count() == 1
    # The plan was for less than the balance: paid, the account is settled and the rest written off.
    w["account"].refresh_from_db()
    settlement = Settlement.objects.get(plan=plan)
    assert (w["account"].status, w["account"].balance) == ("settled", Decimal("0"))
    assert (settlement.status, settlement.written_off) == (Settlement.Status.SETTLED, Decimal("400.00"))
    assert accounts_age(today=w["second"] + timedelta(days=1))["instalments_missed"] == 0
    assert audit_verify(record=False).ok


def test_payment_pays_instalments_oldest_first_partly_and_ahead(plan_world):
    w, plan = plan_world, plan_world["plan"]
    pay(w, "100.00")
    assert instalments(plan) == [("due", Decimal("100.00")), ("due", Decimal("0"))]
    pay(w, "350.00")  # finishes the first, part of the second
    assert instalments(plan) == [("paid", Decimal("300.00")), ("due", Decimal("150.00"))]
    pay(w, "400.00")  # more than the plan still needs: the rest reduces the balance, whose remainder is written off
    plan.refresh_from_db()
    w["account"].refresh_from_db()
    assert plan.status == RepaymentPlan.Status.COMPLETED
    assert instalments(plan) == [("paid", Decimal("300.00")), ("paid", Decimal("300.00"))]
    # 1000 - 850 paid = 150 left, written off: the plan for 600 was a settlement (issue 13).
    assert (w["account"].balance, w["account"].status) == (Decimal("0"), "settled")
    assert Settlement.objects.get(plan=plan).written_off == Decimal("150.00")
    last = AuditEvent.objects.filter(action="cases.payment.recorded").order_by("-id").first()
    assert last.data["plan"]["unapplied"] == "250.00" and last.data["plan"]["completed"] is True


def test_a_payment_counts_toward_both_an_open_promise_and_the_plan(plan_world):
    w, plan = plan_world, plan_world["plan"]
    promise = PromiseToPay.objects.create(account=w["account"], amount=Decimal("300.00"), currency="CNY",
                                          due_date=w["first"])
    pay(w, "300.00")
    promise.refresh_from_db()
    assert promise.status == PromiseToPay.Status.KEPT
    assert instalments(plan)[0] == ("paid", Decimal("300.00"))
    event = AuditEvent.objects.get(action="cases.payment.recorded")
    assert event.data["promise_id"] == promise.pk and event.data["promise_status"] == "kept"


def test_instalments_of_cancelled_or_broken_plans_are_not_missed(plan_world):
    w, old = plan_world, plan_world["plan"]
    # Renegotiated: the new plan cancels the old one; its first instalment is later than the old one's.
    new = services.repayment_plan_create(
        actor=w["agent"], account=w["account"], total_amount=Decimal("600.00"),
        instalments=[(w["first"] + timedelta(days=3), Decimal("600.00"))],
    )
    old.refresh_from_db()
    assert old.status == RepaymentPlan.Status.CANCELLED
    # ... and so is the settlement the old plan paid; the new plan's is approved in its place.
    assert Settlement.objects.get(plan=old).status == Settlement.Status.WITHDRAWN
    assert Settlement.objects.get(plan=new).status == Settlement.Status.APPROVED
    broken = RepaymentPlan.objects.create(account=w["account"], total_amount=Decimal("50"), currency="CNY",
                                          status=RepaymentPlan.Status.BROKEN)
    Instalment.objects.create(plan=broken, seq=1, due_date=w["first"], amount=Decimal("50"))

    assert accounts_age(today=w["first"] + timedelta(days=1))["instalments_missed"] == 0
    assert not Instalment.objects.filter(status=Instalment.Status.MISSED).exists()
    assert not AuditEvent.objects.filter(action="cases.instalment.missed").exists()
    new.refresh_from_db()
    assert new.status == RepaymentPlan.Status.ACTIVE

    # The active plan's instalment is still missed when its own date passes unpaid.
    assert accounts_age(today=w["first"] + timedelta(days=4))["instalments_missed"] == 1
    assert list(Instalment.objects.filter(status=Instalment.Status.MISSED).values_list("plan_id", flat=True)) == [new.pk]


def test_payment_without_a_plan_records_no_plan_data():
    lender = f.lender()
    agent = f.user(role="agent")
    account = f.account(lender=lender, agent=agent)
    services.payment_record(actor=agent, account=account, amount=Decimal("10.00"), paid_at=timezone.now())
    assert "plan" not in AuditEvent.objects.get(action="cases.payment.recorded").data

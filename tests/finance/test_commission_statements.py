"""Commission (versioned plans, by bucket at placement, flat fee once per account, reversed with the payment) and
remittance statements (net/gross, frozen periods, CSV/PDF, scoped downloads, totals reconcile to the cent)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from cases import services
from cases.models import OverdueAccount
from finance import services as finance
from finance import statements
from finance.models import CommissionEntry, PaymentAllocation, PaymentReversal, Statement
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_settling_minute(monkeypatch):
    """Statements stop a minute before now in production; here they are issued right after the payments."""
    monkeypatch.setattr(statements, "SETTLE", timedelta(0))


@pytest.fixture
def world():
    lender = f.lender()
    agent = f.user(role="agent")
    account = f.account(lender=lender, agent=agent, balance="1000.00", due_days_ago=45)  # M2 at placement
    return {"lender": lender, "agent": agent, "account": account, "lender_user": f.user(role="lender", lender=lender),
            "supervisor": f.user(role="supervisor")}


def pay(w, amount: str, account=None):
    return services.payment_record(actor=w["agent"], account=account or w["account"], amount=Decimal(amount),
                                   paid_at=timezone.now())


def plan(w, **kw):
    defaults = {"percent_by_bucket": {"M2": "12.5"}, "default_percent": Decimal("20"), "flat_fee": Decimal("0"),
                "remit_net": True, "effective_from": timezone.now() - timedelta(days=1)}
    return finance.commission_plan_publish(actor=None, lender_id=w["lender"].pk, **{**defaults, **kw})


def test_commission_by_bucket_at_placement_flat_fee_once_and_reversed_with_the_payment(world):
    plan(world, flat_fee=Decimal("15.00"))
    p1 = pay(world, "100.01")
    pay(world, "200.00")
    e1, e2 = CommissionEntry.objects.order_by("pk")
    assert (e1.bucket, e1.percent, e1.commission, e1.flat_fee) == ("M2", Decimal("12.50"), Decimal("12.50"), Decimal("15.00"))
    assert (e2.commission, e2.flat_fee) == (Decimal("25.00"), Decimal("0"))
    finance.payment_reverse(payment=p1, actor=world["agent"], reason="bounced")
    back = CommissionEntry.objects.get(payment=p1, kind="reversed")
    assert (back.commission, back.flat_fee) == (Decimal("-12.50"), Decimal("-15.00"))
    # The flat fee was taken back, so the next payment earns it again.
    pay(world, "10.00")
    assert CommissionEntry.objects.order_by("-pk").first().flat_fee == Decimal("15.00")
    # An account at M1 at placement falls back to the default percent.
    m1 = f.account(lender=world["lender"], agent=world["agent"], balance="100.00", due_days_ago=10)
    pay(world, "50.00", account=m1)
    assert CommissionEntry.objects.get(account=m1).commission == Decimal("10.00")


def test_a_newer_commission_plan_applies_from_its_effective_date(world):
    plan(world)
    plan(world, percent_by_bucket={"M2": "5"}, effective_from=timezone.now() + timedelta(days=3))
    pay(world, "100.00")
    assert CommissionEntry.objects.get().commission == Decimal("12.50")


def test_statements_net_and_frozen_corrections_land_in_the_next_period(world):
    plan(world)
    p1 = pay(world, "400.00")
    pay(world, "100.00")
    (st1,) = statements.statement_issue(actor=world["supervisor"], lender=world["lender"])
    assert (st1.payments_total, st1.payments_count, st1.commission_total) == (Decimal("500.00"), 2, Decimal("62.50"))
    assert st1.remit_net and st1.amount_due == Decimal("437.50")
    # A bounce after issue: the first statement does not change, the next one carries it.
    finance.payment_reverse(payment=p1, actor=world["agent"], reason="bounced")
    (st2,) = statements.statement_issue(actor=world["supervisor"], lender=world["lender"])
    st1.refresh_from_db()
    assert (st1.payments_total, st1.amount_due) == (Decimal("500.00"), Decimal("437.50"))
    assert st1.amount_due == sum((line["amount"] or 0) for line in statements.statement_lines(statement=st1)) \
        - sum((line["commission"] or 0) for line in statements.statement_lines(statement=st1))
    assert (st2.payments_total, st2.reversals_total, st2.commission_total) == (Decimal("0"), Decimal("400.00"), Decimal("-50.00"))
    assert st2.amount_due == Decimal("-350.00") and st2.period_start == st1.period_end
    # Nothing new: no empty overlapping statement.
    assert statements.statement_issue(actor=None, lender=world["lender"], period_end=st2.period_end) == []


def test_gross_terms_do_not_deduct_commission(world):
    plan(world, remit_net=False)
    pay(world, "80.00")
    (st,) = statements.statement_issue(actor=None, lender=world["lender"], period_end=timezone.now() + timedelta(hours=1))
    assert (st.remit_net, st.commission_total, st.amount_due) == (False, Decimal("10.00"), Decimal("80.00"))


def test_every_statement_reconciles_with_the_payments_table_to_the_cent(world):
    lenders = [world["lender"], f.lender(), f.lender()]
    t = timezone.now()
    for i, lender in enumerate(lenders):
        finance.commission_plan_publish(actor=None, lender_id=lender.pk, percent_by_bucket={}, default_percent=Decimal("7.77"),
                                        flat_fee=Decimal("3.33"), remit_net=i % 2 == 0, effective_from=t - timedelta(days=1))
    accounts = [f.account(lender=lender, agent=world["agent"], balance="999.99") for lender in lenders for _ in range(3)]
    payments = []
    for step in range(4):
        for n, acc in enumerate(accounts):
            payments.append(pay(world, f"{(n + 1) * 3 + step}.{n:02d}", account=acc))
        if step % 2:
            finance.payment_reverse(payment=payments[-step], actor=None, reason="chargeback")
        for lender in lenders:
            statements.statement_issue(actor=None, lender=lender)
    for lender in lenders:
        issued = Statement.objects.filter(lender=lender)
        pay_total = PaymentAllocation.objects.filter(lender=lender).aggregate(s=Sum("amount"))["s"]
        rev_total = PaymentReversal.objects.filter(lender=lender).aggregate(s=Sum("amount"))["s"] or 0
        com = CommissionEntry.objects.filter(lender=lender)
        com_total = sum((c.total for c in com), Decimal("0"))
        assert issued.aggregate(s=Sum("payments_total"))["s"] == pay_total
        assert issued.aggregate(s=Sum("reversals_total"))["s"] == rev_total
        assert issued.aggregate(s=Sum("commission_total"))["s"] == com_total
        net = lenders.index(lender) % 2 == 0
        assert issued.aggregate(s=Sum("amount_due"))["s"] == pay_total - rev_total - (com_total if net else 0)
    # And the Payment table itself (what the cases app recorded) agrees.
    from cases.models import Payment

    assert Statement.objects.aggregate(s=Sum("payments_total"))["s"] == Payment.objects.aggregate(s=Sum("amount"))["s"]


def test_downloads_are_scoped_and_are_real_csv_and_pdf(world, client):
    plan(world)
    OverdueAccount.objects.filter(pk=world["account"].pk).update(external_ref="=HYPERLINK(1)")
    pay(world, "100.00")
    (st,) = statements.statement_issue(actor=None, lender=world["lender"], period_end=timezone.now() + timedelta(hours=1))
    client.force_login(world["lender_user"])
    page = client.get("/finance/statements/")
    assert page.status_code == 200 and f'data-statement="{st.pk}"' in page.content.decode()
    csv = client.get(f"/finance/statements/{st.pk}.csv")
    body = csv.content.decode("utf-8-sig")
    assert csv.status_code == 200 and "'=HYPERLINK(1)" in body and "100.00" in body
    pdf = client.get(f"/finance/statements/{st.pk}.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    other = f.user(role="lender", lender=f.lender())
    client.force_login(other)
    assert client.get(f"/finance/statements/{st.pk}.csv").status_code == 404
    assert f'data-statement="{st.pk}"' not in client.get("/finance/statements/").content.decode()
    client.force_login(world["agent"])
    assert client.get("/finance/statements/").status_code == 403
    client.force_login(world["supervisor"])
    assert client.get(f"/finance/statements/{st.pk}.pdf").status_code == 200
    r = client.post("/finance/statements/issue/", {"lender": world["lender"].pk})
    assert r.status_code == 302

"""Payments are split over the balance parts by the lender's allocation order (versioned data)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from cases import services
from cases.models import OverdueAccount
from compliance.models import AuditEvent
from finance import services as finance
from finance.models import AccountBalance, PaymentAllocation
from tests import factories as f
from tests.finance.conftest import parts_set

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    lender = f.lender()
    agent = f.user(role="agent")
    account = f.account(lender=lender, agent=agent, balance="1000.00")
    return {"lender": lender, "agent": agent, "account": account}


def pay(w, amount: str, **kw):
    return services.payment_record(actor=w["agent"], account=w["account"], amount=Decimal(amount),
                                   paid_at=kw.pop("paid_at", timezone.now()), **kw)


def parts(account) -> dict[str, Decimal]:
    return AccountBalance.objects.get(account=account).parts()


def test_default_order_pays_costs_then_fees_then_interest_then_principal(world):
    parts_set(world["account"], principal="600", interest="200", fees="100", costs="100")
    payment = pay(world, "250.00")
    a = PaymentAllocation.objects.get(pk=payment.pk)
    assert (a.costs, a.fees, a.interest, a.principal) == (Decimal("100"), Decimal("100"), Decimal("50"), Decimal("0"))
    assert a.order == ["costs", "fees", "interest", "principal"] and a.order_version == 0
    assert parts(world["account"]) == {"costs": 0, "fees": 0, "interest": Decimal("150"), "principal": Decimal("600")}
    world["account"].refresh_from_db()
    assert world["account"].balance == Decimal("750.00") == AccountBalance.objects.get(account=world["account"]).total
    assert AuditEvent.objects.filter(action="finance.payment.allocated", subject_id=str(payment.pk)).count() == 1


def test_the_lenders_published_order_in_force_is_used_and_kept_on_the_allocation(world):
    parts_set(world["account"], principal="600", interest="200", fees="100", costs="100")
    now = timezone.now()
    finance.allocation_order_publish(actor=None, lender_id=world["lender"].pk,
                                     order=["principal", "interest", "fees", "costs"], effective_from=now - timedelta(days=1))
    # A later version not yet in force is not used.
    finance.allocation_order_publish(actor=None, lender_id=world["lender"].pk,
                                     order=["interest", "costs", "fees", "principal"], effective_from=now + timedelta(days=5))
    a = PaymentAllocation.objects.get(pk=pay(world, "650.00").pk)
    assert (a.principal, a.interest, a.fees, a.costs) == (Decimal("600"), Decimal("50"), Decimal("0"), Decimal("0"))
    assert a.order_version == 1
    # Another lender's order never applies here.
    other = f.lender()
    finance.allocation_order_publish(actor=None, lender_id=other.pk, order=["costs", "principal", "fees", "interest"],
                                     effective_from=now - timedelta(days=2))
    assert finance.allocation_order_in_force(lender_id=world["lender"].pk)[1] == 1


def test_an_order_must_name_each_part_once(world):
    with pytest.raises(ValidationError):
        finance.allocation_order_publish(actor=None, lender_id=world["lender"].pk, order=["principal", "principal"],
                                         effective_from=timezone.now())


def test_an_account_without_parts_starts_all_principal_and_overpayment_is_unapplied(world):
    assert not AccountBalance.objects.filter(account=world["account"]).exists()
    a = PaymentAllocation.objects.get(pk=pay(world, "1200.00").pk)
    assert (a.principal, a.unapplied) == (Decimal("1000.00"), Decimal("200.00"))
    ab = AccountBalance.objects.get(account=world["account"])
    assert ab.placed_principal == Decimal("1000.00") and ab.total == 0
    world["account"].refresh_from_db()
    assert world["account"].status == OverdueAccount.Status.PAID


def test_a_lenders_change_of_balance_moves_the_parts_with_it(world):
    parts_set(world["account"], principal="600", interest="200", fees="100", costs="100")
    OverdueAccount.objects.filter(pk=world["account"].pk).update(balance=Decimal("900.00"))  # placement update
    pay(world, "10.00")
    ab = AccountBalance.objects.get(account=world["account"])
    # The 100 decrease came off principal first (reverse order), then the payment paid costs.
    assert (ab.principal, ab.costs, ab.placed_principal) == (Decimal("500"), Decimal("90"), Decimal("500"))
    assert ab.total == Decimal("890.00")


def test_case_page_shows_parts_and_each_payments_allocation(world, client):
    parts_set(world["account"], principal="600", interest="200", fees="100", costs="100")
    pay(world, "150.00", reference="BANK-77")
    client.force_login(world["agent"])
    html = client.get(f"/cases/{world['account'].pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'id="balance-parts"' in html
    assert 'data-part="costs">0.00 CNY' in html and 'data-part="fees">50.00 CNY' in html
    assert "BANK-77" in html

"""Property: for any sequence of payments and reversals, balance parts + allocated amounts of the payments not
reversed equal the placed parts, to the cent, and the parts add up to the account's balance."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cases import services
from finance import services as finance
from finance.models import PARTS, AccountBalance, PaymentAllocation, PaymentReversal
from tests import factories as f
from tests.finance.conftest import parts_set

pytestmark = pytest.mark.django_db

cents = st.integers(min_value=0, max_value=50_000_00).map(lambda c: Decimal(c) / 100)
ops = st.lists(
    st.one_of(st.tuples(st.just("pay"), st.integers(min_value=1, max_value=80_000_00).map(lambda c: Decimal(c) / 100)),
              st.tuples(st.just("reverse"), st.integers(min_value=0, max_value=30))),
    min_size=1, max_size=12,
)


def _check(account) -> None:
    account.refresh_from_db()
    ab = AccountBalance.objects.get(account=account)
    live = PaymentAllocation.objects.filter(account=account).exclude(
        pk__in=PaymentReversal.objects.filter(account=account).values("pk"))
    for part in PARTS:
        allocated = sum((getattr(a, part) for a in live), Decimal("0"))
        assert getattr(ab, part) >= 0
        assert getattr(ab, part) + allocated == getattr(ab, f"placed_{part}"), part
    assert ab.total == account.balance


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(placed=st.tuples(cents, cents, cents, cents).filter(lambda t: sum(t) > 0), steps=ops,
       order=st.permutations(list(PARTS)))
def test_parts_plus_allocations_equal_placed_amounts(placed, steps, order):
    with transaction.atomic():
        lender = f.lender()
        agent = f.user()
        account = f.account(lender=lender, agent=agent)
        parts_set(account, **{p: str(v) for p, v in zip(PARTS, placed, strict=True)})
        finance.allocation_order_publish(actor=None, lender_id=lender.pk, order=list(order),
                                         effective_from=timezone.now() - timedelta(days=1))
        payments = []
        for op, value in steps:
            if op == "pay":
                payments.append(services.payment_record(actor=agent, account=account, amount=value,
                                                        paid_at=timezone.now()))
            elif payments:
                finance.payment_reverse(payment=payments[value % len(payments)], actor=agent, reason="bounced")
            _check(account)
        transaction.set_rollback(True)

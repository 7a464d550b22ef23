"""A payment and the daily ageing on the same account at the same moment do not deadlock (issue 13).

Before the fix the ageing job locked promises/instalments first and the account last, while a payment locks
the account first: two real PostgreSQL connections running both at once deadlocked.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connections
from django.utils import timezone

from cases import services
from cases.ageing import accounts_age
from cases.models import Instalment, OverdueAccount, PromiseToPay, RepaymentPlan
from finance.models import AccountBalance, PaymentAllocation
from tests import factories as f

ROUNDS = 30


def _late_commitments(account: OverdueAccount, today) -> None:
    """A promise and an active plan whose first instalment are late: the ageing job must lock both, and so must
    a payment (it credits the promise and pays the instalment)."""
    PromiseToPay.objects.create(account=account, amount=Decimal("5.00"), currency="CNY",
                                due_date=today - timedelta(days=1))
    RepaymentPlan.objects.filter(account=account, status="active").update(status="cancelled")
    plan = RepaymentPlan.objects.create(account=account, total_amount=Decimal("20.00"), currency="CNY")
    Instalment.objects.create(plan=plan, seq=1, due_date=today - timedelta(days=1), amount=Decimal("10.00"))
    Instalment.objects.create(plan=plan, seq=2, due_date=today + timedelta(days=30), amount=Decimal("10.00"))


@pytest.mark.postgres
def test_payment_and_daily_ageing_on_one_account_do_not_deadlock(transactional_db, require_postgres):
    agent = f.user()
    account = f.account(lender=f.lender(), agent=agent, balance="100000.00")
    today = timezone.localdate()
    errors: list[str] = []
    lock = threading.Lock()

    def run(barrier: threading.Barrier, job) -> None:
        try:
            barrier.wait(timeout=30)
            job()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            with lock:
                errors.append(repr(exc))
        finally:
            connections.close_all()

    def pay():
        services.payment_record(actor=agent, account=account, amount=Decimal("1.00"), paid_at=timezone.now())

    def age():
        accounts_age(today=today)

    for _ in range(ROUNDS):
        _late_commitments(account, today)
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=run, args=(barrier, job)) for job in (pay, age)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)

    assert errors == []
    account.refresh_from_db()
    assert account.balance == Decimal("100000.00") - ROUNDS * Decimal("1.00")
    # Every payment was allocated, and the parts still add up to the balance.
    assert PaymentAllocation.objects.filter(account=account).count() == ROUNDS
    assert AccountBalance.objects.get(account=account).total == account.balance

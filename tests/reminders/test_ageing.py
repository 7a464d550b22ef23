"""Daily ageing in bulk: correct buckets, broken promises, missed instalments, bounded queries, audit."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from cases.ageing import accounts_age
from cases.models import Instalment, OverdueAccount, PromiseToPay, RepaymentPlan
from cases.services import bucket_for, days_past_due_on
from compliance.audit import audit_verify
from compliance.models import AuditEvent
from tests import factories as f

pytestmark = pytest.mark.django_db

N = 3000


def _bulk_accounts(n: int, *, today: date) -> list[OverdueAccount]:
    lenders = [f.lender(), f.lender()]
    borrower = f.borrower(lender=lenders[0])
    borrower2 = f.borrower(lender=lenders[1])
    rows = [
        OverdueAccount(
            lender=lenders[i % 2], borrower=borrower if i % 2 == 0 else borrower2, external_ref=f"AGE-{i:06d}",
            balance=Decimal("100.00"), principal=Decimal("100.00"), due_date=today - timedelta(days=(i * 7) % 400 - 5),
            days_past_due=0, bucket="M0", status="closed" if i % 50 == 0 else "assigned",
        )
        for i in range(n)
    ]
    return OverdueAccount.objects.bulk_create(rows, batch_size=1000)


def test_ageing_thousands_of_accounts_in_bounded_queries(django_assert_max_num_queries):
    today = date(2026, 6, 15)
    accounts = _bulk_accounts(N, today=today)
    # Promises: one broken (past, unpaid), one kept in time (due today), one partly paid (broken).
    broken = PromiseToPay.objects.create(account=accounts[1], amount=Decimal("50"), currency="CNY",
                                         due_date=today - timedelta(days=1))
    today_promise = PromiseToPay.objects.create(account=accounts[3], amount=Decimal("50"), currency="CNY", due_date=today)
    partly = PromiseToPay.objects.create(account=accounts[5], amount=Decimal("50"), paid_amount=Decimal("20"),
                                         currency="CNY", due_date=today - timedelta(days=3))
    OverdueAccount.objects.filter(pk__in=[accounts[1].pk, accounts[3].pk, accounts[5].pk]).update(status="promise")
    plan = RepaymentPlan.objects.create(account=accounts[7], total_amount=Decimal("100"), currency="CNY")
    missed = Instalment.objects.create(plan=plan, seq=1, due_date=today - timedelta(days=2), amount=Decimal("50"))
    future = Instalment.objects.create(plan=plan, seq=2, due_date=today + timedelta(days=28), amount=Decimal("50"))
    OverdueAccount.objects.filter(pk=accounts[7].pk).update(status="plan")

    # ~47 on PostgreSQL whatever N is; SQLite caps variables per statement, so bulk inserts come in
    # more (still batched) statements there.
    limit = 60 if connection.vendor == "postgresql" else 60 + N // 50
    with django_assert_max_num_queries(limit):
        result = accounts_age(today=today)

    assert result["promises_broken"] == 2 and result["instalments_missed"] == 1
    expected_changes = 0
    for acc in OverdueAccount.objects.all():
        if acc.status == "closed":
            assert (acc.days_past_due, acc.bucket) == (0, "M0")  # closed accounts are not aged
            continue
        dpd = days_past_due_on(due_date=acc.due_date, today=today)
        assert (acc.days_past_due, acc.bucket) == (dpd, bucket_for(dpd)), acc.external_ref
        expected_changes += bucket_for(dpd) != "M0"
    assert result["bucket_changes"] == expected_changes > 2000
    assert AuditEvent.objects.filter(action="cases.account.aged").count() == expected_changes

    statuses = dict(OverdueAccount.objects.filter(pk__in=[a.pk for a in accounts[:8]]).values_list("pk", "status"))
    assert statuses[accounts[1].pk] == "in_contact" and statuses[accounts[5].pk] == "in_contact"
    assert statuses[accounts[3].pk] == "promise"  # due today: not broken yet
    assert statuses[accounts[7].pk] == "in_contact"
    assert PromiseToPay.objects.get(pk=broken.pk).status == "broken"
    assert PromiseToPay.objects.get(pk=partly.pk).status == "broken"
    assert PromiseToPay.objects.get(pk=today_promise.pk).status == "open"
    assert Instalment.objects.get(pk=missed.pk).status == "missed"
    assert Instalment.objects.get(pk=future.pk).status == "due"
    assert RepaymentPlan.objects.get(pk=plan.pk).status == "broken"
    assert AuditEvent.objects.filter(action="cases.promise.broken").count() == 2
    assert AuditEvent.objects.filter(action="cases.plan.broken").count() == 1
    assert AuditEvent.objects.filter(action="cases.account.status_changed").count() == 3
    assert audit_verify(record=False).ok  # bulk appends keep every chain intact

    # Same day again: nothing to do.
    again = accounts_age(today=today)
    assert (again["updated"], again["bucket_changes"], again["promises_broken"]) == (0, 0, 0)
    # Next day: days move for everyone open, buckets only at the boundaries.
    nxt = accounts_age(today=today + timedelta(days=1))
    assert nxt["updated"] == OverdueAccount.objects.exclude(status="closed").filter(due_date__lt=today + timedelta(days=1)).count()


def test_ageing_queries_do_not_grow_with_accounts(require_postgres):
    from django.test.utils import CaptureQueriesContext

    today = date(2026, 6, 15)
    _bulk_accounts(200, today=today)
    with CaptureQueriesContext(connection) as small:
        accounts_age(today=today)
    _bulk_accounts(2000, today=today - timedelta(days=3))
    with CaptureQueriesContext(connection) as large:
        accounts_age(today=today + timedelta(days=40))
    assert len(large) <= len(small) + 2

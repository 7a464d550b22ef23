"""Daily ageing in bulk: set-based UPDATEs, bulk audit, a bounded number of queries.

``accounts_age(today=...)``, in one transaction per step:

1. Promises past their date and not fully paid become *broken*; accounts in "promise" with no
   other open promise go back to "in contact".
2. Instalments of active plans past their date and not fully paid become *missed*, the plan *broken*;
   accounts in "plan" with no other active plan go back to "in contact".
3. Days past due and bucket of every open account, chunked by id range: one UPDATE per chunk for
   the days, and the bucket CASE written as due-date comparisons (the same thresholds as
   ``cases.services.bucket_for``) so it is portable and index-friendly. Only bucket changes are
   audited (``cases.account.aged``), like ``account_age``; one summary event per run.

Queries: O(chunks + changed rows / 5000), independent of the number of accounts per chunk.

Lock order (issue 13): steps 1 and 2 lock the affected *accounts first* (in id order), then their
promises / instalments / plans, then the audit chain head — the order ``payment_record`` takes them
in (account, promise, instalments, plan, audit). Locking the children first, as before, deadlocked
against a payment on the same account.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.db import connection, transaction
from django.db.models import Case, CharField, Exists, F, IntegerField, OuterRef, Q, Value, When
from django.db.models.expressions import RawSQL

from compliance.audit import audit_log, audit_log_many
from servicing import clock

from .models import Instalment, OverdueAccount, PromiseToPay, RepaymentPlan
from .services import BUCKETS

CHUNK = 200_000


def bucket_expression(today: date) -> Case:
    """SQL equivalent of ``bucket_for(days_past_due_on(due_date=due_date, today=today))``."""
    whens = [When(due_date__gte=today, then=Value("M0"))]
    whens += [When(due_date__gte=today - timedelta(days=upper), then=Value(label)) for upper, label in BUCKETS[1:]]
    return Case(*whens, default=Value("M7+"), output_field=CharField())


def dpd_expression(today: date) -> RawSQL:
    if connection.vendor == "postgresql":
        return RawSQL("GREATEST(0, %s::date - due_date)", [today], output_field=IntegerField())
    return RawSQL("MAX(0, CAST(julianday(%s) - julianday(due_date) AS INTEGER))", [today.isoformat()],
                  output_field=IntegerField())


def _status_back_to_contact(*, account_ids: list[int], from_status: str, still_open: Exists, reason: str) -> list[dict]:
    """Move accounts whose promise/plan fell through back to in_contact; return their audit events."""
    if not account_ids:
        return []
    qs = OverdueAccount.objects.filter(pk__in=account_ids, status=from_status).exclude(still_open)
    moved = list(qs.values_list("id", "lender_id", "borrower_id"))
    OverdueAccount.objects.filter(pk__in=[m[0] for m in moved]).update(status=OverdueAccount.Status.IN_CONTACT)
    return [
        {"action": "cases.account.status_changed", "lender_id": lender_id, "subject_type": "cases.overdueaccount",
         "subject_id": pk, "account_id": pk, "borrower_id": borrower_id,
         "data": {"from": from_status, "to": "in_contact", "reason": reason}}
        for pk, lender_id, borrower_id in moved
    ]


def _accounts_lock(account_ids) -> list[int]:
    """Lock accounts in id order before any of their child rows (see the module docstring); return their ids.

    Only children of these accounts are then locked, so a row that turned late in between waits for tomorrow.
    """
    ids = sorted(set(account_ids))
    if not ids:
        return []
    return list(OverdueAccount.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk", flat=True))


def promises_break(*, today: date) -> int:
    overdue = Q(status=PromiseToPay.Status.OPEN, due_date__lt=today, paid_amount__lt=F("amount"))
    with transaction.atomic():
        locked = _accounts_lock(PromiseToPay.objects.filter(overdue).values_list("account_id", flat=True))
        # Re-read under the account locks (a payment may have kept a promise meanwhile); of=self so the
        # joined account and borrower rows are not locked a second time in join order.
        rows = list(
            PromiseToPay.objects.select_for_update(of=("self",)).filter(overdue, account_id__in=locked).order_by("pk")
            .values_list("id", "account_id", "account__lender_id", "account__borrower_id", "amount", "paid_amount",
                         "due_date")
        )
        if not rows:
            return 0
        PromiseToPay.objects.filter(pk__in=[r[0] for r in rows]).update(status=PromiseToPay.Status.BROKEN)
        events = [
            {"action": "cases.promise.broken", "lender_id": lender_id, "subject_type": "cases.promisetopay",
             "subject_id": pk, "account_id": acc, "borrower_id": bor,
             "data": {"amount": amount, "paid_amount": paid, "due_date": due}}
            for pk, acc, lender_id, bor, amount, paid, due in rows
        ]
        events += _status_back_to_contact(
            account_ids=sorted({r[1] for r in rows}), from_status=OverdueAccount.Status.PROMISE,
            still_open=Exists(PromiseToPay.objects.filter(account=OuterRef("pk"), status=PromiseToPay.Status.OPEN)),
            reason="promise broken",
        )
        audit_log_many(events=events)
        return len(rows)


def instalments_miss(*, today: date) -> int:
    # Instalments of cancelled (renegotiated), broken or completed plans are no longer owed as scheduled.
    late = Q(status=Instalment.Status.DUE, due_date__lt=today, paid_amount__lt=F("amount"),
             plan__status=RepaymentPlan.Status.ACTIVE)
    with transaction.atomic():
        locked = _accounts_lock(Instalment.objects.filter(late).values_list("plan__account_id", flat=True))
        rows = list(
            Instalment.objects.select_for_update(of=("self",)).filter(late, plan__account_id__in=locked).order_by("pk")
            .values_list("id", "plan_id", "plan__account_id", "plan__account__lender_id", "plan__account__borrower_id",
                         "seq", "amount", "paid_amount", "due_date")
        )
        if not rows:
            return 0
        Instalment.objects.filter(pk__in=[r[0] for r in rows]).update(status=Instalment.Status.MISSED)
        events = [
            {"action": "cases.instalment.missed", "lender_id": lender_id, "subject_type": "cases.instalment",
             "subject_id": pk, "account_id": acc, "borrower_id": bor,
             "data": {"plan_id": plan, "seq": seq, "amount": amount, "paid_amount": paid, "due_date": due}}
            for pk, plan, acc, lender_id, bor, seq, amount, paid, due in rows
        ]
        plans = list(
            RepaymentPlan.objects.filter(pk__in={r[1] for r in rows}, status=RepaymentPlan.Status.ACTIVE)
            .values_list("id", "account_id", "account__lender_id", "account__borrower_id")
        )
        RepaymentPlan.objects.filter(pk__in=[p[0] for p in plans]).update(status=RepaymentPlan.Status.BROKEN)
        events += [
            {"action": "cases.plan.broken", "lender_id": lender_id, "subject_type": "cases.repaymentplan",
             "subject_id": pk, "account_id": acc, "borrower_id": bor, "data": {"reason": "instalment missed"}}
            for pk, acc, lender_id, bor in plans
        ]
        events += _status_back_to_contact(
            account_ids=sorted({p[1] for p in plans}), from_status=OverdueAccount.Status.PLAN,
            still_open=Exists(RepaymentPlan.objects.filter(account=OuterRef("pk"), status=RepaymentPlan.Status.ACTIVE)),
            reason="repayment plan broken",
        )
        audit_log_many(events=events)
        return len(rows)


def accounts_reage(*, today: date, chunk: int = CHUNK) -> dict:
    bucket, dpd = bucket_expression(today), dpd_expression(today)
    open_accounts = OverdueAccount.objects.filter(status__in=OverdueAccount.OPEN_STATUSES)
    bounds = OverdueAccount.objects.order_by("id").values_list("id", flat=True)
    lo, hi = bounds.first(), bounds.last()
    updated = bucket_changes = 0
    if lo is None:
        return {"updated": 0, "bucket_changes": 0}
    now = clock.now()
    for start in range(lo, hi + 1, chunk):
        with transaction.atomic():
            part = open_accounts.filter(pk__gte=start, pk__lt=start + chunk)
            changed = list(
                part.annotate(new_bucket=bucket).exclude(bucket=F("new_bucket"))
                .values_list("id", "lender_id", "borrower_id", "bucket", "new_bucket")
            )
            updated += part.filter(~Q(days_past_due=dpd) | ~Q(bucket=bucket)).update(
                days_past_due=dpd, bucket=bucket, updated_at=Value(now)
            )
            audit_log_many(events=[
                {"action": "cases.account.aged", "lender_id": lender_id, "subject_type": "cases.overdueaccount",
                 "subject_id": pk, "account_id": pk, "borrower_id": bor,
                 "data": {"bucket_from": old, "bucket_to": new, "as_of": today}}
                for pk, lender_id, bor, old, new in changed
            ])
            bucket_changes += len(changed)
    return {"updated": updated, "bucket_changes": bucket_changes}


def accounts_age(*, today: date | None = None) -> dict:
    """The daily ageing run (see module docstring). Safe to run again the same day: it changes nothing."""
    today = today or clock.localdate()
    result = {
        "as_of": today.isoformat(),
        "promises_broken": promises_break(today=today),
        "instalments_missed": instalments_miss(today=today),
        **accounts_reage(today=today),
    }
    audit_log(action="cases.ageing.run", data=result)
    return result

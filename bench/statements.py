"""A month's remittance statements for 100 lenders over 1M payments, against one SQL aggregate of the same sums.

    .venv/bin/python bench/statements.py [--payments 1000000] [--lenders 100] [--keep-db]

Builds (with INSERT ... SELECT: benchmark data, not product writes) L lenders with 100 accounts each and N
payments recorded over last month, each with its allocation and commission entry, 1% of them reversed. Then
times ``finance.statements.statements_issue_month`` (the real service: per lender three indexed aggregates,
the statements and an audit event) and, as the baseline in the same run, one SQL statement computing the same
sums (payments, reversals, commission per lender and currency). Each is the median of 3 runs (statements are
deleted between runs). Target: <= 3x the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date, timedelta

from _common import DEFAULT_URL, setup_django

BASELINE_SQL = """
WITH p AS (SELECT lender_id, currency, count(*) n, sum(amount) t FROM finance_paymentallocation
           WHERE created_at >= %(s)s AND created_at < %(e)s GROUP BY 1, 2),
     r AS (SELECT lender_id, currency, count(*) n, sum(amount) t FROM finance_paymentreversal
           WHERE reversed_at >= %(s)s AND reversed_at < %(e)s GROUP BY 1, 2),
     c AS (SELECT lender_id, currency, sum(commission + flat_fee) t FROM finance_commissionentry
           WHERE created_at >= %(s)s AND created_at < %(e)s GROUP BY 1, 2)
SELECT p.lender_id, p.currency, p.n, p.t, r.n, r.t, c.t FROM p
  LEFT JOIN r USING (lender_id, currency) LEFT JOIN c USING (lender_id, currency)
"""


def drop_database(url: str) -> None:
    import psycopg2

    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


def build(*, payments: int, lenders: int, start, end) -> None:
    from django.db import connection
    from django.utils import timezone

    from cases.models import Borrower, Lender, OverdueAccount
    from finance.models import PaymentAllocation

    if PaymentAllocation.objects.count() >= payments:
        return
    t = time.perf_counter()
    objs = Lender.objects.bulk_create([Lender(name=f"Bench {i}", code=f"bench-st-{i}", status="active")
                                       for i in range(lenders)])
    Lender.objects.update(created_at=start - timedelta(days=300))  # the first statement starts at the lender's start
    borrowers = Borrower.objects.bulk_create([Borrower(lender=lender, name=f"b{j}", phones=[f"1380{i:03d}{j:04d}"])
                                              for i, lender in enumerate(objs) for j in range(100)])
    OverdueAccount.objects.bulk_create([
        OverdueAccount(lender_id=b.lender_id, borrower=b, external_ref=f"A{b.pk}", principal=1000, balance=1000,
                       due_date=date(2026, 1, 1)) for b in borrowers])
    seconds = (end - start).total_seconds()
    with connection.cursor() as cur:
        cur.execute("SELECT min(id), count(*) FROM cases_overdueaccount")
        first, n_accounts = cur.fetchone()
        cur.execute("""
            INSERT INTO cases_payment (account_id, amount, currency, paid_at, method, reference, created_at)
            SELECT %(first)s + g %% %(n)s, (100 + g %% 9900) / 100.0 + 1, 'CNY', ts, 'bank', 'P' || g, ts
            FROM (SELECT g, %(start)s::timestamptz + (g * %(step)s) * interval '1 second' ts
                  FROM generate_series(0, %(payments)s - 1) g) x""",
                    {"first": first, "n": n_accounts, "start": start, "step": seconds / payments, "payments": payments})
        cur.execute("""
            INSERT INTO finance_paymentallocation (payment_id, lender_id, account_id, currency, amount, principal,
                interest, fees, costs, unapplied, "order", order_version, promise_credit, instalments, plan_completed,
                external_ref, source, created_at)
            SELECT p.id, a.lender_id, p.account_id, 'CNY', p.amount, p.amount, 0, 0, 0, 0, '[]', 0, 0, '[]', false,
                   '', 'bench', p.created_at
            FROM cases_payment p JOIN cases_overdueaccount a ON a.id = p.account_id""")
        cur.execute("""
            INSERT INTO finance_commissionentry (payment_id, lender_id, account_id, kind, currency, base, percent,
                bucket, plan_version, commission, flat_fee, created_at)
            SELECT payment_id, lender_id, account_id, 'earned', 'CNY', amount, 10, 'M7+', 1, round(amount * 0.1, 2), 0,
                   created_at FROM finance_paymentallocation""")
        cur.execute("""
            INSERT INTO finance_paymentreversal (payment_id, lender_id, account_id, amount, currency, reason, note,
                undone, reversed_at)
            SELECT payment_id, lender_id, account_id, amount, 'CNY', 'bounced', '', '{}', created_at + interval '1 hour'
            FROM finance_paymentallocation WHERE payment_id %% 100 = 0 AND created_at < %(e)s::timestamptz - interval '1 hour'""",
                    {"e": end})
        cur.execute("ANALYZE")
    print(f"built {payments:,} payments for {lenders} lenders in {time.perf_counter() - t:.1f} s "
          f"(at {timezone.now():%H:%M})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--payments", type=int, default=1_000_000)
    ap.add_argument("--lenders", type=int, default=100)
    ap.add_argument("--keep-db", action="store_true", help="reuse the bench database and its data")
    args = ap.parse_args()
    import os

    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    if not args.keep_db:
        # Starts from an empty database, so this script only drops one that is plainly this bench's.
        if url.rsplit("/", 1)[1] != "servicing_bench_statements":
            sys.exit(f"refusing to drop {url}: use servicing_bench_statements, or pass --keep-db")
        drop_database(url)
    setup_django(url)

    from django.db import connection

    from finance.models import Statement
    from finance.statements import month_bounds, statements_issue_month

    today = date.today()
    last = today.replace(day=1) - timedelta(days=1)
    start, end = month_bounds(year=last.year, month=last.month)
    build(payments=args.payments, lenders=args.lenders, start=start, end=end)

    def baseline() -> tuple[float, list]:
        t = time.perf_counter()
        with connection.cursor() as cur:
            cur.execute(BASELINE_SQL, {"s": start, "e": end})
            rows = cur.fetchall()
        return time.perf_counter() - t, rows

    def service() -> tuple[float, list]:
        Statement.objects.all().delete()
        # Statements start where the lender's last one ended: start them all at the month's first instant.
        from cases.models import Lender

        Lender.objects.update(created_at=start)
        t = time.perf_counter()
        issued = statements_issue_month(actor=None, year=last.year, month=last.month)
        return time.perf_counter() - t, issued

    baseline()
    service()  # warm caches
    base_runs, svc_runs = [], []
    for _ in range(3):
        base_runs.append(baseline()[0])
        secs, issued = service()
        svc_runs.append(secs)
    _t, rows = baseline()
    # The statements equal the baseline's sums, to the cent.
    sums = {(r[0], r[1]): (r[3], r[5] or 0, r[6] or 0) for r in rows}
    for s in issued:
        assert sums[(s.lender_id, s.currency)] == (s.payments_total, s.reversals_total, s.commission_total), s.pk
    b, s = statistics.median(base_runs), statistics.median(svc_runs)
    print(f"statements: {len(issued)} for {args.lenders} lenders over {args.payments:,} payments")
    print(f"baseline (one SQL aggregate)   {b * 1000:9.1f} ms")
    print(f"statements_issue_month          {s * 1000:9.1f} ms   ratio {s / b:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()

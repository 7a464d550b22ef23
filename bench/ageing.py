"""Daily ageing + reminder scheduling over 1M accounts on PostgreSQL: total time and queries.

    .venv/bin/python bench/ageing.py

Builds (once, with COPY: benchmark data, not product writes) N accounts with due dates spread over
400 days, 2% with an open promise (a third of them already broken), 1% with a plan of 3 instalments.
Then runs ``cases.ageing.accounts_age`` and ``reminders.services.reminders_schedule`` for "today" and
the next day, and prints time and queries of each; baseline in the same run: one plain
``UPDATE ... SET days_past_due = ...`` over all open accounts. Target: ageing + scheduling <= 60 s.
"""

from __future__ import annotations

import argparse
import io
import time
from datetime import date, timedelta

from _common import setup_django


def build(n: int, today: date) -> None:
    from django.db import connection
    from django.utils import timezone

    from cases.models import Lender, OverdueAccount
    from cases.services import bucket_for, days_past_due_on

    lender, _ = Lender.objects.get_or_create(code="bench-ageing", defaults={"name": "Bench ageing", "status": "active"})
    have = OverdueAccount.objects.filter(lender=lender).count()
    if have >= n:
        print(f"reusing {have:,} accounts")
        return lender
    t0 = time.perf_counter()
    now = timezone.now().isoformat()
    with connection.cursor() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM cases_borrower")
        b0 = cur.fetchone()[0]
        cur.execute("SELECT coalesce(max(id), 0) FROM cases_overdueaccount")
        a0 = cur.fetchone()[0]
        buf = io.StringIO()
        for i in range(n):
            buf.write(f"{b0 + i + 1}\t{lender.pk}\tB{i}\t\t[\"1390000{i % 10000:04d}\"]\t[\"b{i}@example.com\"]\t\t\tCN\t[\"Asia/Shanghai\"]"
                      f"\tt\tt\tf\tf\tf\tf\tf\tf\tf\t{now}\t{now}\n")
        buf.seek(0)
        cur.copy_expert(
            "COPY cases_borrower (id, lender_id, name, national_id, phones, emails, address, region, jurisdiction, time_zones,"
            " sms_consent, email_consent, after_hours_consent, cease, dispute, attorney, bankruptcy, deceased, vulnerable,"
            " created_at, updated_at) FROM STDIN", buf)
        buf = io.StringIO()
        for i in range(n):
            due = today - timedelta(days=(i * 7) % 400 - 3)
            status = "promise" if i % 50 == 0 else ("plan" if i % 100 == 1 else "assigned")
            # Aged as of yesterday, as the previous nightly run left them.
            dpd = days_past_due_on(due_date=due, today=today - timedelta(days=1))
            buf.write(f"{a0 + i + 1}\t{lender.pk}\t{b0 + i + 1}\tAGE-{i:07d}\t\t1000\t1000\tCNY\t{due.isoformat()}\t\\N\t{dpd}\t{bucket_for(dpd)}"
                      f"\t{status}\t\\N\t\\N\t\\N\t{{}}\t{now}\t{now}\n")
        buf.seek(0)
        cur.copy_expert(
            "COPY cases_overdueaccount (id, lender_id, borrower_id, external_ref, product, principal, balance, currency,"
            " due_date, last_payment_date, days_past_due, bucket, status, assigned_agent_id, locked_by_id, locked_until,"
            " extra, placed_at, updated_at) FROM STDIN", buf)
        # Promises on every 50th account: due from 3 days ago to 10 days ahead.
        buf = io.StringIO()
        for i in range(0, n, 50):
            due = today + timedelta(days=(i // 50) % 14 - 3)
            buf.write(f"{a0 + i + 1}\t500\tCNY\t{due.isoformat()}\topen\t0\t\\N\t{now}\n")
        buf.seek(0)
        cur.copy_expert("COPY cases_promisetopay (account_id, amount, currency, due_date, status, paid_amount,"
                        " created_by_id, created_at) FROM STDIN", buf)
        # Plans on every 100th (+1) account, 3 monthly instalments starting between 2 days ago and 12 ahead.
        cur.execute(
            "INSERT INTO cases_repaymentplan (account_id, total_amount, currency, status, created_by_id, created_at)"
            " SELECT id, 900, 'CNY', 'active', NULL, now() FROM cases_overdueaccount WHERE lender_id = %s AND status = 'plan'",
            [lender.pk])
        cur.execute(
            "INSERT INTO cases_instalment (plan_id, seq, due_date, amount, paid_amount, status)"
            " SELECT p.id, s, %s::date + ((p.id %% 15) - 2 + (s - 1) * 30)::int, 300, 0, 'due'"
            " FROM cases_repaymentplan p JOIN cases_overdueaccount a ON a.id = p.account_id, generate_series(1, 3) s"
            " WHERE a.lender_id = %s", [today, lender.pk])
        for table in ("cases_borrower", "cases_overdueaccount"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}','id'), (SELECT max(id) FROM {table}))")
        cur.execute("ANALYZE")
    print(f"built {n:,} accounts in {time.perf_counter() - t0:.1f}s")
    return lender


def timed(label: str, fn):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    t0 = time.perf_counter()
    with CaptureQueriesContext(connection) as ctx:
        result = fn()
    elapsed = time.perf_counter() - t0
    print(f"{label:<44} {elapsed:7.2f} s  {len(ctx):>5} queries  {result}")
    return elapsed, len(ctx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1_000_000)
    args = parser.parse_args()
    setup_django()
    from datetime import datetime
    from datetime import time as dtime
    from zoneinfo import ZoneInfo

    from django.db import connection, transaction

    from cases.ageing import accounts_age
    from reminders.services import reminders_schedule

    today = date(2026, 3, 2)
    build(args.accounts, today)

    def baseline():  # rolled back, so the real run below starts from yesterday's state
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("UPDATE cases_overdueaccount SET days_past_due = GREATEST(0, %s::date - due_date)"
                        " WHERE status IN ('new','assigned','in_contact','promise','plan','dispute','legal')", [today])
            transaction.set_rollback(True)
            return cur.rowcount

    base, _ = timed("baseline: one plain UPDATE of days_past_due", baseline)
    total_t = total_q = 0
    for day in (today, today + timedelta(days=1)):
        t1, q1 = timed(f"accounts_age({day})", lambda d=day: accounts_age(today=d))
        at = datetime.combine(day, dtime(0, 30), tzinfo=ZoneInfo("Asia/Shanghai"))
        t2, q2 = timed(f"reminders_schedule({day})", lambda a=at: reminders_schedule(now=a))
        total_t, total_q = total_t + t1 + t2, total_q + q1 + q2
    per_run = total_t / 2
    print(f"per daily run (ageing + scheduling): {per_run:.2f} s, {total_q // 2} queries; "
          f"{per_run / base:.1f}x the plain UPDATE; target <= 60 s: {'met' if per_run <= 60 else 'MISSED'}")


if __name__ == "__main__":
    main()

"""Compliance check latency over a PostgreSQL history of >= 1M contact attempts.

    .venv/bin/python bench/compliance_check.py

Builds (once) 50k borrowers/accounts with 20 attempts each (1M rows, bulk-loaded with COPY:
benchmark data, not product writes) under two lenders, every person placed by both (one national ID,
two Borrower records), so person-scoped rules (CN v3 daily caps, holds that reach every lender) read
the history of both records. Times ``contact_check`` for random accounts and, as the baseline in the
same run, one indexed COUNT over the same person's recent attempts.
Targets: p50 <= 1 ms, p99 <= 5 ms.
"""

from __future__ import annotations

import argparse
import io
import random
import time
from datetime import timedelta

from _common import setup_django, summary


def build(n_borrowers: int, per: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from cases.models import ContactAttempt, Lender

    if ContactAttempt.objects.count() >= n_borrowers * per:
        print(f"reusing existing history: {ContactAttempt.objects.count():,} attempts")
        return
    t0 = time.perf_counter()
    lender, _ = Lender.objects.get_or_create(code="bench", defaults={"name": "Bench", "status": "active"})
    second, _ = Lender.objects.get_or_create(code="bench2", defaults={"name": "Bench 2", "status": "active"})
    half = n_borrowers // 2

    def lender_of(i: int) -> int:  # borrower i and i + half are one person with two lenders
        return lender.pk if i < half else second.pk

    def nid(i: int) -> str:
        return f"BENCH{i % half:08d}"
    now = timezone.now()
    rnd = random.Random(1)
    zones = ['["Asia/Shanghai"]', '["America/New_York"]', '["America/New_York", "America/Los_Angeles"]', '["Australia/Sydney"]']
    juris = ["CN", "US", "US-MA", "AU"]
    with connection.cursor() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM cases_borrower")
        b0 = cur.fetchone()[0]
        buf = io.StringIO()
        for i in range(n_borrowers):
            k = i % 4
            k = (i % half) % 4
            buf.write(f"{b0 + i + 1}\t{lender_of(i)}\tB{i % half}\t{nid(i)}\t[\"13{i % half:09d}\"]\t[]\t\t\t{juris[k]}\t{zones[k]}\tt\tt\tf\tf\tf\tf\tf\tf\tf\t[]\t{now.isoformat()}\t{now.isoformat()}\n")
        buf.seek(0)
        cur.copy_expert(
            "COPY cases_borrower (id, lender_id, name, national_id, phones, emails, address, region, jurisdiction, time_zones,"
            " sms_consent, email_consent, after_hours_consent, cease, dispute, attorney, bankruptcy, deceased, vulnerable,"
            " opted_out, created_at, updated_at) FROM STDIN", buf)
        buf = io.StringIO()
        for i in range(n_borrowers):
            buf.write(f"{b0 + i + 1}\t{lender_of(i)}\t{b0 + i + 1}\tBENCH-{b0 + i}\t\t1000\t1000\tCNY\t2026-01-01\t\\N\t30\tM1\tassigned\t\\N\t\\N\t\\N\t{{}}\t{now.isoformat()}\t{now.isoformat()}\n")
        buf.seek(0)
        cur.copy_expert(
            "COPY cases_overdueaccount (id, lender_id, borrower_id, external_ref, product, principal, balance, currency, due_date,"
            " last_payment_date, days_past_due, bucket, status, assigned_agent_id, locked_by_id, locked_until, extra, placed_at,"
            " updated_at) FROM STDIN", buf)
        cur.execute("SELECT setval(pg_get_serial_sequence('cases_borrower','id'), (SELECT max(id) FROM cases_borrower))")
        cur.execute("SELECT setval(pg_get_serial_sequence('cases_overdueaccount','id'), (SELECT max(id) FROM cases_overdueaccount))")
        outcomes = ["no_answer", "busy", "voicemail", "right_party_contact", "not_connected", "delivered"]
        channels = ["call", "call", "call", "sms", "email"]
        chunk = 200_000
        rows = 0
        buf = io.StringIO()
        for i in range(n_borrowers):
            bid = b0 + i + 1
            for _ in range(per):
                at = now - timedelta(minutes=rnd.randint(60, 60 * 24 * 90))
                buf.write(f"{lender_of(i)}\t{bid}\t{bid}\t\\N\t{rnd.choice(channels)}\toutbound\tborrower\t{rnd.choice(outcomes)}"
                          f"\t+8613{i % half:09d}\t{at.isoformat()}\t{now.isoformat()}\t\tapi\t{juris[(i % half) % 4]}\t1"
                          f"\tcompleted\tid:{nid(i)}\t[]\t[]\tf\n")
                rows += 1
            if rows >= chunk:
                buf.seek(0)
                cur.copy_expert(COPY_ATTEMPTS, buf)
                buf, rows = io.StringIO(), 0
        buf.seek(0)
        cur.copy_expert(COPY_ATTEMPTS, buf)
        cur.execute("ANALYZE")
    print(f"built {n_borrowers:,} borrowers, {n_borrowers * per:,} attempts in {time.perf_counter() - t0:.1f}s")


COPY_ATTEMPTS = (
    "COPY cases_contactattempt (lender_id, borrower_id, account_id, agent_id, channel, direction, party, outcome, phone,"
    " occurred_at, recorded_at, notes, source, policy_code, policy_version, state, person_key, other_accounts, breach,"
    " is_breach) FROM STDIN"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--borrowers", type=int, default=50_000)
    parser.add_argument("--per", type=int, default=20)
    parser.add_argument("--samples", type=int, default=3000)
    args = parser.parse_args()
    setup_django()
    from django.db import connection
    from django.utils import timezone

    from cases.gate import contact_check
    from cases.models import ContactAttempt, OverdueAccount

    build(args.borrowers, args.per)
    total = ContactAttempt.objects.count()
    ids = list(OverdueAccount.objects.filter(lender__code__in=["bench", "bench2"]).values_list("id", flat=True))
    rnd = random.Random(2)
    sample = [rnd.choice(ids) for _ in range(args.samples)]
    accounts = {a.pk: a for a in OverdueAccount.objects.select_related("borrower").filter(pk__in=set(sample))}
    now = timezone.now()
    for pk in sample[:200]:  # warm caches and the connection
        contact_check(account=accounts[pk], channel="call", at=now)
    check_ms, count_ms = [], []
    allowed = 0
    with connection.cursor() as cur:
        for pk in sample:
            acc = accounts[pk]
            t = time.perf_counter()
            decision = contact_check(account=acc, channel="call", at=now)
            check_ms.append((time.perf_counter() - t) * 1000)
            allowed += decision.allowed
            t = time.perf_counter()
            cur.execute(
                "SELECT count(*) FROM cases_contactattempt WHERE person_key = %s AND occurred_at > %s",
                [acc.borrower.person_key, now - timedelta(days=31)],
            )
            cur.fetchone()
            count_ms.append((time.perf_counter() - t) * 1000)
    persons = len({a.borrower.person_key for a in accounts.values()})
    print(f"history: {total:,} contact attempts in PostgreSQL; {len(accounts):,} accounts of {persons:,} persons,"
          f" each person with two lenders; {allowed}/{len(sample)} checks allowed")
    print(summary("contact_check (policy + history + engine)", check_ms))
    print(summary("baseline: one indexed COUNT query", count_ms))
    from _common import pct

    print(f"ratio check/COUNT: p50 {pct(check_ms, 50) / pct(count_ms, 50):.2f}x, p99 {pct(check_ms, 99) / pct(count_ms, 99):.2f}x")
    print(f"targets: p50 <= 1 ms ({'met' if pct(check_ms, 50) <= 1 else 'MISSED'}), p99 <= 5 ms ({'met' if pct(check_ms, 99) <= 5 else 'MISSED'})")


if __name__ == "__main__":
    main()

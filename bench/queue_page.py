"""Agent work-queue page: server time and query count with 100k accounts and 1M attempts in PostgreSQL.

    .venv/bin/python bench/queue_page.py

Builds (once) 100k borrowers/accounts spread over 40 agents (2,500 open accounts each), 10 contact
attempts per account over the last 90 days (1M rows), some promises (due today / broken) and due
callbacks, bulk-loaded with COPY (benchmark data, not product writes). Then times the whole queue
view (URL routing, session, the priority-ordered selector, pagination, bulk compliance status for
the page, template rendering) through Django's test client, and as the baseline in the same run one
indexed SELECT of the same page of rows. Target: p50 <= 50 ms.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import time
from datetime import timedelta

from _common import pct, setup_django, summary

AGENTS = 40


def build(n_accounts: int, per: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from cases.models import ContactAttempt, Lender, OverdueAccount, User

    if OverdueAccount.objects.filter(lender__code="bench-queue").count() >= n_accounts:
        print(f"reusing existing data: {OverdueAccount.objects.count():,} accounts, {ContactAttempt.objects.count():,} attempts")
        return
    t0 = time.perf_counter()
    lender, _ = Lender.objects.get_or_create(code="bench-queue", defaults={"name": "Bench queue", "status": "active"})
    agents = []
    for i in range(AGENTS):
        agent, _ = User.objects.get_or_create(username=f"bench-agent{i}", defaults={"role": "agent"})
        agents.append(agent.pk)
    now = timezone.now()
    today = timezone.localdate()
    rnd = random.Random(1)
    zones = ['["Asia/Shanghai"]', '["America/New_York"]', '["America/New_York", "America/Los_Angeles"]', '["Australia/Sydney"]']
    juris = ["CN", "US", "US-MA", "AU"]
    statuses = ["assigned", "in_contact", "promise", "assigned", "in_contact", "paid"]
    with connection.cursor() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM cases_borrower")
        b0 = cur.fetchone()[0]
        cur.execute("SELECT coalesce(max(id), 0) FROM cases_overdueaccount")
        a0 = cur.fetchone()[0]
        buf = io.StringIO()
        for i in range(n_accounts):
            k = 0 if i % 10 else (i // 10) % 4  # 90 % CN, the rest spread over US / US-MA / AU
            buf.write(f"{b0 + i + 1}\t{lender.pk}\t借款人{i}\t\t[\"13{rnd.randint(100000000, 999999999)}\"]\t[]\t\t\t{juris[k]}\t{zones[k]}"
                      f"\tt\tt\tf\t{'t' if i % 97 == 0 else 'f'}\tf\tf\tf\tf\tf\t{now.isoformat()}\t{now.isoformat()}\n")
        buf.seek(0)
        cur.copy_expert(
            "COPY cases_borrower (id, lender_id, name, national_id, phones, emails, address, region, jurisdiction, time_zones,"
            " sms_consent, email_consent, after_hours_consent, cease, dispute, attorney, bankruptcy, deceased, vulnerable,"
            " created_at, updated_at) FROM STDIN", buf)
        buf = io.StringIO()
        for i in range(n_accounts):
            dpd = rnd.randint(1, 360)
            bucket = "M7+" if dpd > 180 else f"M{(dpd - 1) // 30 + 1}"
            bal = f"{rnd.randint(500, 90000)}.{rnd.randint(0, 99):02d}"
            buf.write(f"{a0 + i + 1}\t{lender.pk}\t{b0 + i + 1}\tQ-{a0 + i}\t\t{bal}\t{bal}\tCNY\t{today - timedelta(days=dpd)}\t\\N\t{dpd}"
                      f"\t{bucket}\t{rnd.choice(statuses)}\t{agents[i % AGENTS]}\t\\N\t\\N\t{{}}\t{now.isoformat()}\t{now.isoformat()}\n")
        buf.seek(0)
        cur.copy_expert(
            "COPY cases_overdueaccount (id, lender_id, borrower_id, external_ref, product, principal, balance, currency, due_date,"
            " last_payment_date, days_past_due, bucket, status, assigned_agent_id, locked_by_id, locked_until, extra, placed_at,"
            " updated_at) FROM STDIN", buf)
        for table in ("cases_borrower", "cases_overdueaccount"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}','id'), (SELECT max(id) FROM {table}))")
        outcomes = ["no_answer", "busy", "voicemail", "right_party_contact", "not_connected", "delivered"]
        channels = ["call", "call", "call", "sms", "email"]
        rows, buf = 0, io.StringIO()
        for i in range(n_accounts):
            aid, bid = a0 + i + 1, b0 + i + 1
            for _ in range(per):
                at = now - timedelta(minutes=rnd.randint(60, 60 * 24 * 90))
                buf.write(f"{lender.pk}\t{bid}\t{aid}\t{agents[i % AGENTS]}\t{rnd.choice(channels)}\toutbound\tborrower\t{rnd.choice(outcomes)}"
                          f"\t1380000\t{at.isoformat()}\t{now.isoformat()}\t\tapi\t{juris[0 if i % 10 else (i // 10) % 4]}\t1\n")
                rows += 1
            if rows >= 200_000:
                buf.seek(0)
                cur.copy_expert(COPY_ATTEMPTS, buf)
                rows, buf = 0, io.StringIO()
        buf.seek(0)
        cur.copy_expert(COPY_ATTEMPTS, buf)
        # Queue flags: 5 % open promises (a fifth of them due today), 2 % broken, 3 % due callbacks.
        buf = io.StringIO()
        for i in range(0, n_accounts, 20):
            due = today if i % 100 == 0 else today + timedelta(days=rnd.randint(1, 14))
            buf.write(f"{a0 + i + 1}\t100.00\tCNY\t{due}\topen\t0\t\\N\t{now.isoformat()}\n")
        for i in range(7, n_accounts, 50):
            buf.write(f"{a0 + i + 1}\t100.00\tCNY\t{today - timedelta(days=3)}\tbroken\t0\t\\N\t{now.isoformat()}\n")
        buf.seek(0)
        cur.copy_expert("COPY cases_promisetopay (account_id, amount, currency, due_date, status, paid_amount, created_by_id,"
                        " created_at) FROM STDIN", buf)
        buf = io.StringIO()
        for i in range(3, n_accounts, 33):
            buf.write(f"{a0 + i + 1}\t{agents[i % AGENTS]}\t{(now - timedelta(minutes=rnd.randint(1, 600))).isoformat()}\tcall\t\tscheduled\t{now.isoformat()}\n")
        buf.seek(0)
        cur.copy_expert("COPY cases_callback (account_id, agent_id, due_at, channel, note, status, created_at) FROM STDIN", buf)
        cur.execute("ANALYZE")
    print(f"built {n_accounts:,} accounts, {n_accounts * per:,} attempts in {time.perf_counter() - t0:.1f}s")


COPY_ATTEMPTS = (
    "COPY cases_contactattempt (lender_id, borrower_id, account_id, agent_id, channel, direction, party, outcome, phone,"
    " occurred_at, recorded_at, notes, source, policy_code, policy_version) FROM STDIN"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--per", type=int, default=10)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--page-size", type=int, default=25)
    args = parser.parse_args()
    os.environ.setdefault("DEBUG", "0")  # production-like: no debug query log, no debug pages
    setup_django()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from cases.models import ContactAttempt, OverdueAccount, User

    build(args.accounts, args.per)
    total_accounts, total_attempts = OverdueAccount.objects.count(), ContactAttempt.objects.count()
    agents = list(User.objects.filter(username__startswith="bench-agent").order_by("pk"))
    rnd = random.Random(3)
    clients = {}
    for agent in agents:
        c = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
        c.force_login(agent)
        clients[agent.pk] = c
    url = f"/queue/?per={args.page_size}"
    for agent in agents[:5]:  # warm the connection, templates, parsed policies
        assert clients[agent.pk].get(url).status_code == 200
    page_ms, base_ms = [], []
    with CaptureQueriesContext(connection) as ctx:
        r = clients[agents[0].pk].get(url)
    n_queries = len(ctx.captured_queries)
    open_per_agent = OverdueAccount.objects.filter(assigned_agent=agents[0], status__in=OverdueAccount.OPEN_STATUSES).count()
    with connection.cursor() as cur:
        for _ in range(args.samples):
            agent = rnd.choice(agents)
            page = rnd.randint(1, 5)
            t = time.perf_counter()
            r = clients[agent.pk].get(f"{url}&page={page}")
            page_ms.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200
            t = time.perf_counter()
            cur.execute(
                "SELECT id, external_ref, balance, days_past_due, status FROM cases_overdueaccount"
                " WHERE assigned_agent_id = %s AND status IN %s ORDER BY days_past_due DESC, balance DESC, id"
                " LIMIT %s OFFSET %s",
                [agent.pk, tuple(OverdueAccount.OPEN_STATUSES), args.page_size, (page - 1) * args.page_size],
            )
            cur.fetchall()
            base_ms.append((time.perf_counter() - t) * 1000)
    print(f"data: {total_accounts:,} accounts, {total_attempts:,} contact attempts; "
          f"{len(agents)} agents, {open_per_agent:,} open accounts in one agent's queue; page size {args.page_size}")
    print(summary(f"queue page (GET {url}, full view)", page_ms))
    print(summary("baseline: one indexed SELECT of the page", base_ms))
    print(f"queries per queue page: {n_queries}")
    print(f"ratio page/SELECT: p50 {pct(page_ms, 50) / pct(base_ms, 50):.1f}x, p95 {pct(page_ms, 95) / pct(base_ms, 95):.1f}x")
    print(f"target: p50 <= 50 ms ({'met' if pct(page_ms, 50) <= 50 else 'MISSED'})")


if __name__ == "__main__":
    main()

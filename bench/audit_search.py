"""Audit log at scale: the console's filtered search and ``audit_verify`` over millions of events.

    .venv/bin/python bench/audit_search.py [--events 5000000]

Builds (once; reused while the row count matches) ``--events`` audit events bulk-loaded with COPY
(benchmark data, not product writes) with *valid* per-lender hash chains computed while generating,
so ``audit_verify`` does the real work. Then measures:

* the console's search (``compliance.selectors.audit_event_page``: filter by account and a 90-day
  date range, first page of 50, newest first) p50/p95, against a bare indexed SELECT of the same
  ids as the baseline;
* ``audit_verify`` events/s, against a bare fetch of the same rows (no hashing) as the baseline.

Targets: search p95 <= 100 ms; audit_verify >= 200k events/s.
"""

from __future__ import annotations

import argparse
import io
import random
import time
from datetime import UTC, datetime, timedelta

from _common import pct, setup_django, summary

N_LENDERS = 10
N_ACCOUNTS = 200_000
N_AGENTS = 500
WORDS = ["借款人", "承诺", "明天", "还款", "callback", "left", "message", "wrong", "number", "家人", "工资", "下周",
         "dispute", "hardship", "letter", "visit", "partial", "payment", "忙", "不方便"]
RULES = ["CN.NIGHT", "CN.UNANSWERED_PER_NUMBER", "CN.CONVERSATIONS_PER_DAY", "US.REGF.CALL_FREQUENCY", "HOLD.CEASE"]


def build(n_events: int) -> None:
    from django.db import connection

    from compliance.audit import GENESIS, row_hash
    from compliance.models import AuditEvent

    have = AuditEvent.objects.count()
    if have == n_events:
        print(f"reusing existing audit log: {have:,} events")
        return
    t0 = time.perf_counter()
    rnd = random.Random(7)
    enc = __import__("json").JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / n_events
    heads: dict[int, tuple[int, str]] = {}
    cols = ("id, chain, seq, created_at, actor_id, actor_label, lender_id, action, subject_type, subject_id, account_id,"
            " borrower_id, data, policy_code, policy_version, prev_hash, hash")
    with connection.cursor() as cur:
        cur.execute("SET servicing.allow_truncate = 'on'")  # a bench database; see compliance migration 0006
        cur.execute("TRUNCATE compliance_auditevent, compliance_auditchainhead, compliance_auditverification")
        buf = io.StringIO()
        for i in range(1, n_events + 1):
            at = start + step * i
            r = rnd.random()
            account = rnd.randint(1, N_ACCOUNTS)
            agent = rnd.randint(1, N_AGENTS)
            lender = 1000 + account % N_LENDERS
            pcode, pver = "", None
            if r < 0.02:
                chain, lender_id, account_id, borrower_id = 0, None, None, None
                action, stype, sid, data = "auth.login", "", "", {"ip": "10.0.0.1"}
            else:
                chain, lender_id, account_id, borrower_id = lender, lender, account, account
                stype, sid = "cases.overdueaccount", str(account)
                common = {"channel": "call", "direction": "outbound", "party": "borrower",
                          "occurred_at": at.isoformat(), "source": "web"}
                if r < 0.55:
                    action, pcode, pver = "cases.contact_attempt.recorded", "CN", 1
                    stype, sid = "cases.contactattempt", str(i)
                    data = {**common, "outcome": rnd.choice(["no_answer", "busy", "right_party_contact"]),
                            "attempt_id": i, "notes": " ".join(rnd.choices(WORDS, k=rnd.randint(0, 6)))}
                elif r < 0.65:
                    action, pcode, pver = "compliance.contact.blocked", "CN", 1
                    code = rnd.choice(RULES)
                    data = {**common, "outcome": "no_answer", "allowed": False, "policy": "CN v1",
                            "violations": [{"code": code, "message": f"Refused by {code}", "citation": "guideline"}],
                            "next_allowed_at": (at + timedelta(hours=8)).isoformat()}
                elif r < 0.75:
                    action, data = "cases.promise.created", {"amount": "500.00", "currency": "CNY", "due_date": "2026-01-01"}
                elif r < 0.82:
                    action, data = "cases.payment.recorded", {"amount": "120.00", "currency": "CNY", "paid_at": at.isoformat()}
                elif r < 0.9:
                    action, data = "cases.note.added", {"body": " ".join(rnd.choices(WORDS, k=8))}
                elif r < 0.95:
                    action, data = "cases.account.status_changed", {"from": "assigned", "to": "in_contact", "reason": ""}
                else:
                    action, data = "cases.account.assigned", {"from_agent": None, "to_agent": agent}
            seq, prev = heads.get(chain, (0, GENESIS))
            seq += 1
            label = f"agent{agent}"
            row = (i, seq, at, agent, label, lender_id, action, stype, sid, account_id, borrower_id, data, pcode, pver,
                   prev, "")
            h = row_hash(chain, row)
            heads[chain] = (seq, h)
            nul = "\\N"
            buf.write(
                f"{i}\t{chain}\t{seq}\t{at.isoformat()}\t{agent}\t{label}\t{nul if lender_id is None else lender_id}\t"
                f"{action}\t{stype}\t{sid}\t{nul if account_id is None else account_id}\t"
                f"{nul if borrower_id is None else borrower_id}\t{enc(data)}\t{pcode}\t{nul if pver is None else pver}\t"
                f"{prev}\t{h}\n"
            )
            if i % 250_000 == 0 or i == n_events:
                buf.seek(0)
                cur.copy_expert(f"COPY compliance_auditevent ({cols}) FROM STDIN", buf)
                buf = io.StringIO()
                print(f"  loaded {i:,} events ({time.perf_counter() - t0:.0f}s)", flush=True)
        for chain, (seq, h) in heads.items():
            cur.execute("INSERT INTO compliance_auditchainhead (chain, seq, hash) VALUES (%s, %s, %s)", [chain, seq, h])
        cur.execute("SELECT setval(pg_get_serial_sequence('compliance_auditevent','id'), %s)", [n_events])
        cur.execute("ANALYZE compliance_auditevent")
    print(f"built {n_events:,} audit events in {time.perf_counter() - t0:.1f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--skip-verify", action="store_true")
    args = parser.parse_args()
    setup_django()
    from django.db import connection
    from django.utils import timezone

    from compliance.audit import audit_verify
    from compliance.selectors import AuditFilters, audit_event_page

    build(args.events)
    rnd = random.Random(3)
    today = timezone.localdate()
    queries = []
    for _ in range(args.samples):
        end = today - timedelta(days=rnd.randint(0, 270))
        queries.append(AuditFilters(account_id=rnd.randint(1, N_ACCOUNTS), date_from=end - timedelta(days=90), date_to=end))
    for f in queries[:50]:  # warm the connection and caches
        audit_event_page(filters=f)
    search_ms, base_ms, found = [], [], 0
    with connection.cursor() as cur:
        for f in queries:
            t = time.perf_counter()
            page = audit_event_page(filters=f)
            search_ms.append((time.perf_counter() - t) * 1000)
            found += len(page.events)
            lo = timezone.make_aware(datetime.combine(f.date_from, datetime.min.time()))
            hi = timezone.make_aware(datetime.combine(f.date_to + timedelta(days=1), datetime.min.time()))
            t = time.perf_counter()
            cur.execute(
                "SELECT id FROM compliance_auditevent WHERE account_id = %s AND created_at >= %s AND created_at < %s"
                " ORDER BY id DESC LIMIT 51", [f.account_id, lo, hi])
            cur.fetchall()
            base_ms.append((time.perf_counter() - t) * 1000)
    total = args.events
    print(f"audit log: {total:,} events; {found / len(queries):.1f} rows per page on average")
    print(summary("console search (account + 90 days, page 1)", search_ms))
    print(summary("baseline: bare indexed SELECT id", base_ms))
    print(f"ratio search/baseline: p50 {pct(search_ms, 50) / pct(base_ms, 50):.2f}x, p95 {pct(search_ms, 95) / pct(base_ms, 95):.2f}x")

    # Two other console queries, for information: one agent's refusals; a notes search.
    extra = {
        "agent's refused attempts, page 1": AuditFilters(actor_id=17, outcome="refused"),
        "notes search 'hardship', page 1": AuditFilters(q="hardship"),
        "lender + 30 days, page 1": AuditFilters(lender_id=1003, date_from=today - timedelta(days=30), date_to=today),
    }
    for name, f in extra.items():
        ms = []
        for _ in range(20):
            t = time.perf_counter()
            audit_event_page(filters=f)
            ms.append((time.perf_counter() - t) * 1000)
        print(summary(name, ms))
    print(f"target search p95 <= 100 ms: {'met' if pct(search_ms, 95) <= 100 else 'MISSED'}")

    if args.skip_verify:
        return
    t = time.perf_counter()
    with connection.cursor() as cur:
        last, n = 0, 0
        while True:  # baseline: fetch the same columns in the same batches, no hashing
            cur.execute(
                "SELECT id, seq, created_at, actor_id, actor_label, lender_id, action, subject_type, subject_id, account_id,"
                " borrower_id, data, policy_code, policy_version, prev_hash, hash FROM compliance_auditevent"
                " WHERE id > %s ORDER BY id LIMIT 20000", [last])
            rows = cur.fetchall()
            if not rows:
                break
            n += len(rows)
            last = rows[-1][0]
    fetch_s = time.perf_counter() - t
    t = time.perf_counter()
    result = audit_verify(record=False)
    verify_s = time.perf_counter() - t
    rate = result.checked / verify_s
    print(f"audit_verify: {result.checked:,} events in {verify_s:.1f}s = {rate:,.0f} events/s (ok={result.ok})")
    print(f"baseline: fetch only, no hashing: {n:,} rows in {fetch_s:.1f}s = {n / fetch_s:,.0f} rows/s"
          f" (verify is {verify_s / fetch_s:.2f}x the bare fetch)")
    print(f"target >= 200,000 events/s: {'met' if rate >= 200_000 else 'MISSED'}")


if __name__ == "__main__":
    main()

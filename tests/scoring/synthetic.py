"""A synthetic collection history with a planted, learnable signal (tests and bench/scoring.py).

Generator (documented because the tests assert the model finds what is planted here):

- Each account has a hidden willingness to pay ``w`` ~ U(0, 1) and days past due today ~ U(35, 300).
- **Contact attempts** (Poisson, mean 3, over the last 150 days): each reaches the borrower with
  probability 0.1 + 0.6·w; a conversation ends in a promise with probability 0.5·w, a refusal with
  0.4·(1 − w); 20 % of the unreached calls of borrowers with w < 0.3 are wrong numbers.
- **Promises** (binomial, 3 tries at 0.1 + 0.4·w, made 10–150 days ago, due 7 days later): kept with
  probability w (a payment of the promised amount on the due date), broken otherwise; open if due later.
- **Other payments**: in each 30-day window of the last 150 days the account pays with probability
  sigmoid(−2.6 + 3.2·w − 0.004·days past due then).

So payment in the next 30 days depends mostly on ``w``, which is visible only through the history
(contact rate, promises kept and broken, refusals), and a little on days past due: a model using
the history must beat days past due alone. Borrower names and other fields carry no signal.

Rows are written with COPY (test and benchmark data, not product writes: the gate and the audit log
are for outreach the platform makes, and this history is made up).
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta

import numpy as np
from django.db import connection


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _copy_text(value) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _copy(cur, table: str, columns: str, lines) -> None:
    """COPY the given columns plus every other NOT NULL column at its model default (the schema grows
    while others work on it; the generator keeps up without knowing each new column)."""
    from django.apps import apps

    model = next(m for m in apps.get_models() if m._meta.db_table == table)
    given = {c.strip() for c in columns.split(",")}
    extra = [(f.column, _copy_text(f.get_default())) for f in model._meta.concrete_fields
             if f.column not in given and not f.null and not f.primary_key and not getattr(f, "generated", False)
             and (f.has_default() or f.empty_strings_allowed)]
    cols = columns + "".join(f", {c}" for c, _v in extra)
    tail = "".join(f"\t{v}" for _c, v in extra)
    buf = io.StringIO()
    buf.writelines(line[:-1] + tail + "\n" for line in lines)
    buf.seek(0)
    cur.copy_expert(f"COPY {table} ({cols}) FROM STDIN", buf)


def _next_ids(cur, table: str, n: int) -> int:
    cur.execute(f"SELECT coalesce(max(id), 0) FROM {table}")
    start = cur.fetchone()[0] + 1
    cur.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, start + n])
    return start


def history_generate(*, lender, n: int, now: datetime, seed: int = 1, agent=None, chunk: int = 200_000) -> dict:
    """Write ``n`` accounts with history for ``lender``; returns counts. PostgreSQL only."""
    rng = np.random.default_rng(seed)
    counts = {"accounts": 0, "attempts": 0, "promises": 0, "payments": 0}
    ts = now.isoformat()
    agent_id = str(agent.pk) if agent is not None else "\\N"
    status = "assigned" if agent is not None else "new"
    with connection.cursor() as cur:
        for lo in range(0, n, chunk):
            m = min(chunk, n - lo)
            b0 = _next_ids(cur, "cases_borrower", m)
            a0 = _next_ids(cur, "cases_overdueaccount", m)
            w = rng.random(m)
            dpd = rng.integers(35, 300, m)
            balance = rng.integers(500, 50_000, m).astype(float)
            principal = balance * rng.uniform(1.0, 1.5, m)
            _copy(cur, "cases_borrower",
                  "id, lender_id, name, national_id, phones, emails, address, region, jurisdiction, time_zones, "
                  "sms_consent, email_consent, after_hours_consent, cease, dispute, attorney, bankruptcy, deceased, "
                  "vulnerable, created_at, updated_at",
                  (f"{b0 + i}\t{lender.pk}\tS{lo + i}\t\t[\"1390{(lo + i) % 10_000_000:07d}\"]\t[]\t\t\tCN\t"
                   f"[\"Asia/Shanghai\"]\tt\tt\tf\tf\tf\tf\tf\tf\tf\t{ts}\t{ts}\n" for i in range(m)))
            today = now.date()
            _copy(cur, "cases_overdueaccount",
                  "id, lender_id, borrower_id, external_ref, product, principal, balance, currency, due_date, "
                  "last_payment_date, days_past_due, bucket, status, assigned_agent_id, locked_by_id, locked_until, "
                  "extra, placed_at, updated_at",
                  (f"{a0 + i}\t{lender.pk}\t{b0 + i}\tSYN{seed}-{lo + i:08d}\t\t{principal[i]:.2f}\t{balance[i]:.2f}\t"
                   f"CNY\t{today - timedelta(days=int(dpd[i]))}\t\\N\t{dpd[i]}\tM{min(int(dpd[i]) // 30 + 1, 7)}\t"
                   f"{status}\t{agent_id}\t\\N\t\\N\t{{}}\t{(now - timedelta(days=160)).isoformat()}\t{ts}\n"
                   for i in range(m)))
            # Contact attempts.
            k = rng.poisson(3, m)
            own = np.repeat(np.arange(m), k)
            ago = rng.uniform(0.5, 150, len(own))
            reached = rng.random(len(own)) < 0.1 + 0.6 * w[own]
            r = rng.random(len(own))
            outcome = np.where(
                reached,
                np.where(r < 0.5 * w[own], "promise", np.where(r > 1 - 0.4 * (1 - w[own]), "refused", "right_party_contact")),
                np.where((w[own] < 0.3) & (r < 0.2), "wrong_number", np.where(r < 0.6, "no_answer", "busy")),
            )
            _copy(cur, "cases_contactattempt",
                  "lender_id, borrower_id, account_id, channel, direction, party, outcome, phone, occurred_at, "
                  "recorded_at, notes, source, policy_code, policy_version",
                  (f"{lender.pk}\t{b0 + j}\t{a0 + j}\tcall\toutbound\tborrower\t{o}\t\t"
                   f"{(now - timedelta(days=float(d))).isoformat()}\t{ts}\t\timport\tCN\t1\n"
                   for j, d, o in zip(own.tolist(), ago.tolist(), outcome.tolist(), strict=True)))
            # Promises, and the payments of the kept ones.
            kp = rng.binomial(3, 0.1 + 0.4 * w)
            pown = np.repeat(np.arange(m), kp)
            made = rng.uniform(10, 150, len(pown))
            due_ago = made - 7
            kept = rng.random(len(pown)) < w[pown]
            amount = np.maximum(100, np.round(balance[pown] * 0.1))
            pstatus = np.where(due_ago < 1, "open", np.where(kept, "kept", "broken"))
            _copy(cur, "cases_promisetopay",
                  "account_id, amount, currency, due_date, status, paid_amount, created_at",
                  (f"{a0 + j}\t{amt:.2f}\tCNY\t{(now - timedelta(days=float(dd))).date()}\t{s}\t"
                   f"{amt if s == 'kept' else 0:.2f}\t{(now - timedelta(days=float(mk))).isoformat()}\n"
                   for j, amt, dd, s, mk in zip(pown.tolist(), amount.tolist(), due_ago.tolist(), pstatus.tolist(),
                                                made.tolist(), strict=True)))
            pay_own = [pown[pstatus == "kept"]]
            pay_ago = [due_ago[pstatus == "kept"]]
            pay_amt = [amount[pstatus == "kept"]]
            for win in range(5):
                q = _sigmoid(-2.6 + 3.2 * w - 0.004 * (dpd - 30 * win))
                hit = np.nonzero(rng.random(m) < q)[0]
                pay_own.append(hit)
                pay_ago.append(rng.uniform(30 * win + 0.01, 30 * (win + 1), len(hit)))
                pay_amt.append(np.maximum(50, np.round(balance[hit] * rng.uniform(0.02, 0.1, len(hit)))))
            pj, pa, pm = np.concatenate(pay_own), np.concatenate(pay_ago), np.concatenate(pay_amt)
            _copy(cur, "cases_payment", "account_id, amount, currency, paid_at, method, reference, created_at",
                  (f"{a0 + j}\t{amt:.2f}\tCNY\t{(now - timedelta(days=float(d))).isoformat()}\tsynthetic\t\t{ts}\n"
                   for j, d, amt in zip(pj.tolist(), pa.tolist(), pm.tolist(), strict=True)))
            counts["accounts"] += m
            counts["attempts"] += len(own)
            counts["promises"] += len(pown)
            counts["payments"] += len(pj)
    return counts


"""Features computed in SQL, one row per account, as of a moment (``as_of``).

Only the account's own collection history is used: outcomes of contact attempts, promises kept and
broken, payments, days past due, balance. No borrower attribute is read at all (no name, national
ID, gender, age, address or region; the borrower table is not even joined), so no protected
attribute, nor a proxy built from one, can reach the score. ``BANNED_FEATURE_WORDS`` is checked
by a test against ``FEATURES``.

The same query serves training (``as_of`` in the past, with the label: a payment within the
horizon after it) and scoring (``as_of`` = now). Balance and days past due are reconstructed as
of ``as_of`` so a training row sees only what was known then.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import numpy as np
from django.db import connection

#: Model inputs, in order. Reasons shown to agents are phrased from these (scoring/reasons.py).
FEATURES = (
    "days_past_due",
    "log_balance",
    "paid_fraction",
    "promises_kept",
    "promises_broken",
    "promises_open",
    "payments_count",
    "days_since_payment",
    "attempts_90d",
    "contacts_90d",
    "contact_rate_90d",
    "days_since_contact",
    "promise_outcomes_90d",
    "refusals_90d",
    "inbound_90d",
    "messages_90d",
    "wrong_numbers",
)
#: Words that must never appear in a feature name (protected attributes and their usual proxies).
BANNED_FEATURE_WORDS = ("gender", "sex", "ethnic", "race", "religion", "name", "national_id", "birth", "age_",
                        "region", "address", "nationality", "marital", "zone", "phone", "email")
#: "Never happened" is encoded as this many days (beyond any look-back), so the model sees it as old.
NEVER_DAYS = 365
CONTACT_OUTCOMES = ("right_party_contact", "promise", "refused", "dispute_raised")

def _in(values) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"  # constants of this module, never user input


SQL = """
WITH att AS (
    SELECT account_id,
        count(*) FILTER (WHERE direction = 'outbound' AND occurred_at >= %(since90)s) AS attempts_90d,
        count(*) FILTER (WHERE outcome IN {contact} AND occurred_at >= %(since90)s) AS contacts_90d,
        count(*) FILTER (WHERE outcome = 'promise' AND occurred_at >= %(since90)s) AS promise_outcomes_90d,
        count(*) FILTER (WHERE outcome = 'refused' AND occurred_at >= %(since90)s) AS refusals_90d,
        count(*) FILTER (WHERE direction = 'inbound' AND occurred_at >= %(since90)s) AS inbound_90d,
        count(*) FILTER (WHERE channel IN ('sms', 'email') AND occurred_at >= %(since90)s) AS messages_90d,
        count(*) FILTER (WHERE outcome = 'wrong_number') AS wrong_numbers,
        max(occurred_at) FILTER (WHERE outcome IN {contact}) AS last_contact_at
    FROM cases_contactattempt
    WHERE occurred_at < %(as_of)s AND occurred_at >= %(since_all)s {child_filter}
    GROUP BY account_id
), pr AS (
    SELECT account_id,
        count(*) FILTER (WHERE status = 'kept' AND due_date < %(as_of_date)s) AS kept,
        count(*) FILTER (WHERE status = 'broken' AND due_date < %(as_of_date)s) AS broken,
        count(*) FILTER (WHERE status = 'open' OR due_date >= %(as_of_date)s) AS open_
    FROM cases_promisetopay
    WHERE created_at < %(as_of)s {child_filter}
    GROUP BY account_id
), pay AS (
    SELECT account_id,
        count(*) FILTER (WHERE paid_at < %(as_of)s) AS n,
        max(paid_at) FILTER (WHERE paid_at < %(as_of)s) AS last_paid_at,
        coalesce(sum(amount) FILTER (WHERE paid_at >= %(as_of)s), 0) AS paid_after,
        max(CASE WHEN paid_at >= %(as_of)s AND paid_at < %(until)s THEN 1 ELSE 0 END) AS label
    FROM cases_payment
    WHERE 1 = 1 {child_filter}
    GROUP BY account_id
)
SELECT a.id, a.lender_id,
    {dpd} AS dpd,
    CAST(a.balance + coalesce(pay.paid_after, 0) AS {text}) AS balance_at,
    CAST(a.principal AS {real}),
    coalesce(pr.kept, 0), coalesce(pr.broken, 0), coalesce(pr.open_, 0),
    coalesce(pay.n, 0),
    CAST(coalesce({days_since_payment}, {never}) AS {real}),
    coalesce(att.attempts_90d, 0), coalesce(att.contacts_90d, 0),
    CAST(coalesce({days_since_contact}, {never}) AS {real}),
    coalesce(att.promise_outcomes_90d, 0), coalesce(att.refusals_90d, 0), coalesce(att.inbound_90d, 0),
    coalesce(att.messages_90d, 0), coalesce(att.wrong_numbers, 0),
    coalesce(pay.label, 0)
FROM cases_overdueaccount a
LEFT JOIN att ON att.account_id = a.id
LEFT JOIN pr ON pr.account_id = a.id
LEFT JOIN pay ON pay.account_id = a.id
WHERE {where}
ORDER BY a.id
"""


def _days_between(later: str, earlier: str) -> str:
    """Fractional days from ``earlier`` to ``later`` (SQL expressions), in this database's dialect."""
    if connection.vendor == "postgresql":
        return f"extract(epoch FROM {later} - {earlier}) / 86400.0"
    return f"(julianday({later}) - julianday({earlier}))"


def _sql(*, account_ids, training: bool) -> str:
    from cases.models import OverdueAccount

    pg = connection.vendor == "postgresql"
    ids = ""
    if account_ids is not None:
        # Integers only (int() above), so inlining them is safe; works the same on both databases.
        ids = "(" + ",".join(str(int(i)) for i in account_ids) + ")"
    child = f"AND account_id IN {ids}" if ids else ""
    # Training: accounts already overdue at the snapshot, whatever became of them after (paid ones
    # are positives). Scoring: the accounts being worked.
    where = "a.due_date < %(as_of_date)s" if training else f"a.status IN {_in(OverdueAccount.OPEN_STATUSES)}"
    if ids:
        where += f" AND a.id IN {ids}"
    else:
        where += " AND (%(lender)s IS NULL OR a.lender_id = %(lender)s)"
    dpd = ("greatest(%(as_of_date)s::date - a.due_date, 0)" if pg
           else "max(CAST(julianday(%(as_of_date)s) - julianday(a.due_date) AS INTEGER), 0)")
    as_of = "%(as_of)s::timestamptz" if pg else "%(as_of)s"
    return SQL.format(
        # Money travels as text (exact, turned into Decimal only where money is computed); model
        # inputs as floats: psycopg2 builds a Decimal per numeric value, which costs seconds per million.
        text="text" if pg else "TEXT", real="float8" if pg else "REAL",
        child_filter=child, where=where, never=float(NEVER_DAYS), contact=_in(CONTACT_OUTCOMES), dpd=dpd,
        days_since_payment=_days_between(as_of, "pay.last_paid_at"),
        days_since_contact=_days_between(as_of, "att.last_contact_at"),
    )


def _params(*, as_of: datetime, horizon_days: int, lender_id=None) -> dict:
    dt = connection.ops.adapt_datetimefield_value
    return {
        "as_of": dt(as_of), "as_of_date": connection.ops.adapt_datefield_value(as_of.date()),
        "since90": dt(as_of - timedelta(days=90)), "since_all": dt(as_of - timedelta(days=NEVER_DAYS)),
        "until": dt(as_of + timedelta(days=horizon_days)), "lender": lender_id,
    }


class FeatureBatch:
    """Columns of one batch: ids, lender ids, balances (exact text, for money), X (floats, for the model), labels."""

    def __init__(self, rows: list[tuple]):
        cols = list(zip(*rows, strict=True)) if rows else [()] * 19
        self.ids = np.array(cols[0], dtype=np.int64)
        self.lender_ids = np.array(cols[1], dtype=np.int64)
        self.balances = [str(b) for b in cols[3]]
        self.raw = np.column_stack([np.array(c, dtype=np.float64) for c in cols[2:18]]) if rows else np.zeros((0, 16))
        self.labels = np.array(cols[18], dtype=bool)
        self.X = features_matrix(self.raw)

    def __len__(self) -> int:
        return len(self.ids)


def features_matrix(raw: np.ndarray) -> np.ndarray:
    """From the SQL columns (dpd, balance, principal, kept, broken, open, payments, days since payment,
    attempts, contacts, days since contact, promise outcomes, refusals, inbound, messages, wrong numbers)
    to ``FEATURES`` in order."""
    dpd, bal, principal = raw[:, 0], raw[:, 1], raw[:, 2]
    attempts, contacts = raw[:, 8], raw[:, 9]
    with np.errstate(divide="ignore", invalid="ignore"):
        paid_fraction = np.where(principal > 0, np.clip(1 - bal / principal, 0, 1), 0.0)
        contact_rate = np.where(attempts > 0, np.minimum(contacts / np.maximum(attempts, 1), 1.0), 0.0)
    return np.column_stack([
        dpd, np.log1p(np.maximum(bal, 0)), paid_fraction, raw[:, 3], raw[:, 4], raw[:, 5], raw[:, 6],
        np.minimum(raw[:, 7], NEVER_DAYS), attempts, contacts, contact_rate, np.minimum(raw[:, 10], NEVER_DAYS),
        raw[:, 11], raw[:, 12], raw[:, 13], raw[:, 14], raw[:, 15],
    ])


def features_iter(*, as_of: datetime, horizon_days: int = 30, account_ids=None, lender_id: int | None = None,
                  training: bool = False, batch_size: int = 50_000) -> Iterator[FeatureBatch]:
    """Feature rows in batches (a server-side cursor on PostgreSQL: memory stays flat for any size)."""
    if account_ids is not None:
        account_ids = list(account_ids)
        if not account_ids:
            return
    sql = _sql(account_ids=account_ids, training=training)
    params = _params(as_of=as_of, horizon_days=horizon_days, lender_id=lender_id)
    with connection.chunked_cursor() as cur:
        if hasattr(cur, "itersize"):
            cur.itersize = batch_size
        cur.execute(sql, params)
        while rows := cur.fetchmany(batch_size):
            yield FeatureBatch(rows)


def features_load(*, model_only: bool = False, **kwargs) -> FeatureBatch | None:
    """All rows at once (training, tests); None when there are none. ``model_only`` keeps just what
    training needs (ids, lenders, X, labels), so millions of snapshot rows stay affordable."""
    batches = []
    for b in features_iter(**kwargs):
        if model_only:
            b.raw, b.balances = None, []
        batches.append(b)
    if not batches:
        return None
    out = batches[0]
    if len(batches) > 1:
        out.ids = np.concatenate([b.ids for b in batches])
        out.lender_ids = np.concatenate([b.lender_ids for b in batches])
        out.balances = [x for b in batches for x in b.balances]
        out.raw = None if model_only else np.vstack([b.raw for b in batches])
        out.X = np.vstack([b.X for b in batches])
        out.labels = np.concatenate([b.labels for b in batches])
    return out

"""Propensity-to-pay scoring of 1M accounts: features in SQL, the model in batch, scores written back.

    .venv/bin/python bench/scoring.py [--accounts 1000000] [--fresh]

Builds once (COPY, kept for the next run) a synthetic history with a planted signal
(tests/scoring/synthetic.py documents it): N accounts, ~3 calls, ~0.9 promises and ~1.2 payments each.
Then, in the same run:

- trains a model version (3 snapshots, 30-day horizon) and prints its held-out AUC next to the
  AUC of days past due alone on the same held-out accounts;
- times ``scoring.services.scores_refresh`` over every open account (features in one SQL pass
  through a server-side cursor, the model per 50k batch, reasons, COPY + upsert), with the peak RSS;
- baseline: one plain SQL pass over the same rows (SELECT id, balance, days_past_due of the open
  accounts, fetched through the same kind of cursor); the ratio is printed.

Target: scoring 1M accounts in <= 60 s. Its own database ``servicing_bench_scoring`` (``--fresh``
drops it first, and refuses to drop any database whose name does not start with servicing_bench_).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from _common import DEFAULT_URL, setup_django  # noqa: E402


def drop_database(url: str) -> None:
    import psycopg2

    name = url.rsplit("/", 1)[1]
    if not name.startswith("servicing_bench_"):
        raise SystemExit(f"refusing to drop {name!r}: not a servicing_bench_ database")
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(n: int):
    from django.db import connection
    from django.utils import timezone

    from cases.models import Lender, OverdueAccount
    from tests.scoring.synthetic import history_generate

    lender, _ = Lender.objects.get_or_create(code="bench-scoring", defaults={"name": "Bench scoring", "status": "active"})
    have = OverdueAccount.objects.filter(lender=lender).count()
    if have >= n:
        print(f"reusing {have:,} accounts")
        return lender
    t0 = time.perf_counter()
    counts = history_generate(lender=lender, n=n - have, now=timezone.now(), seed=11 + have)
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    print(f"built {counts} in {time.perf_counter() - t0:.1f} s")
    return lender


def baseline_pass() -> tuple[float, int]:
    """One SQL pass over the same rows: the open accounts' id, balance and days past due, all fetched."""
    from django.db import connection, transaction

    from cases.models import OverdueAccount

    statuses = ", ".join(f"'{s}'" for s in OverdueAccount.OPEN_STATUSES)
    t0 = time.perf_counter()
    rows = 0
    with transaction.atomic(), connection.chunked_cursor() as cur:
        cur.itersize = 50_000
        cur.execute(f"SELECT id, lender_id, balance, days_past_due FROM cases_overdueaccount WHERE status IN ({statuses})")
        while chunk := cur.fetchmany(50_000):
            rows += len(chunk)
    return time.perf_counter() - t0, rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--fresh", action="store_true", help="drop the bench database first")
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    if args.fresh:
        drop_database(url)
    setup_django(url)

    from django.utils import timezone

    from scoring import services

    build(args.accounts)
    now = timezone.now()
    # Training runs in a forked child so that the peak RSS printed for scoring is scoring's own.
    from django.db import connections

    connections.close_all()
    results: mp.Queue = mp.Queue()
    child = mp.get_context("fork").Process(target=train, args=(now, results))
    child.start()
    m, train_s, train_rows = results.get()
    child.join()
    print(f"training (child process): {train_s:.1f} s on {train_rows:,} rows (3 snapshots), peak RSS "
          f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB; held-out n={m['n']:,}: "
          f"AUC model {m['auc']:.4f} vs days past due alone {m['auc_dpd']:.4f}; Brier {m['brier']:.4f}")
    rss0 = peak_rss_mb()
    base_s, base_rows = baseline_pass()
    t0 = time.perf_counter()
    counts = services.scores_refresh(now=now)
    score_s = time.perf_counter() - t0
    base2_s, _ = baseline_pass()  # again after, so cache warmth favours neither side
    base = min(base_s, base2_s)
    print(f"scores_refresh: {counts['scored']:,} accounts in {score_s:.1f} s "
          f"({counts['scored'] / score_s:,.0f}/s; {counts['by_model']:,} by the model); peak RSS {peak_rss_mb():.0f} MB "
          f"(before scoring {rss0:.0f} MB)")
    print(f"baseline: one SQL pass over the same {base_rows:,} rows {base:.2f} s; ratio {score_s / base:.1f}x")
    print(f"target <= 60 s: {'met' if score_s <= 60 else 'NOT met'}")


def train(now, results) -> None:
    from scoring import services

    t0 = time.perf_counter()
    model = services.score_model_train(as_of=now, min_outcomes=1000)
    services.score_model_promote(actor=None, model=model)
    results.put((model.metrics["test"], time.perf_counter() - t0, model.metrics["train_rows"]))


if __name__ == "__main__":
    main()

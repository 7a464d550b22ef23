"""Placement import throughput: a generated N-row CSV (default 1M) through the real import service.

    .venv/bin/python bench/import_accounts.py [--rows 1000000] [--keep-db]

Reports rows/s and peak memory of ``placement_batch_process`` (stream, validate, COPY into staging,
set-based upsert of borrowers and accounts), and, as the baseline measured in the same run, a raw
``COPY ... FROM`` of the same file into a bare table of text columns. Memory is sampled during the
import (RSS every 0.1 s): flat means the peak does not grow with the rows processed.
Targets: 1M rows in <= 30 s, <= 4x the raw COPY. The second is below the write floor (next paragraph)
as measured on 2 cores (README, "Lender onboarding"): ~8x the raw COPY on one connection, ~4x even
spread over both, before a line is parsed; so it is not reachable there.

A second figure, the write floor, bounds what any importer into this schema can reach here: the
rows the import wrote (borrowers and accounts) copied by one INSERT ... SELECT each into fresh tables
with the same indexes, without parsing, validation or foreign keys. Its ratio to the raw COPY is
printed beside the import's.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
DATA = ROOT / "bench" / ".data"
os.environ.setdefault("MEDIA_ROOT", str(DATA))

from _common import DEFAULT_URL, setup_django  # noqa: E402

HEADER = ["合同编号", "借款人姓名", "身份证号", "手机号", "email", "address", "region", "product", "本金", "逾期金额",
          "currency", "到期日", "last_payment_date"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
REGIONS = ["110105", "310101", "440106", "330102", "510104", "320102"]


def generate(path: Path, rows: int) -> None:
    from stdnum.cn import ric

    rnd = random.Random(42)
    start = date(2025, 1, 1)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i in range(rows):
            birth = date(1960, 1, 1) + timedelta(days=rnd.randrange(15000))
            body = f"{REGIONS[i % 6]}{birth:%Y%m%d}{i % 1000:03d}"
            nid = body + ric.calc_check_digit(body)
            principal = rnd.randrange(1000, 200000)
            w.writerow([
                f"LN{i:09d}", SURNAMES[i % 20] + "某" + str(i % 97), nid, f"1{rnd.randrange(3, 10)}{i:09d}",
                f"user{i}@example.com", f"{i % 500}号 某路 某区", "CN-" + REGIONS[i % 6][:2], "消费贷",
                f"{principal}.00", f"{principal * 0.8:.2f}", "CNY", (start + timedelta(days=i % 300)).isoformat(),
                "" if i % 3 else (start - timedelta(days=30)).isoformat(),
            ])


class RssSampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    @staticmethod
    def rss(pid: int | str = "self") -> int:
        try:
            with open(f"/proc/{pid}/statm") as fh:
                return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (FileNotFoundError, ProcessLookupError):
            return 0

    @staticmethod
    def children() -> list[int]:
        me, kids = os.getpid(), []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        if int(fh.read().rsplit(")", 1)[1].split()[1]) == me:
                            kids.append(int(entry))
                except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                    pass
        return kids

    def run(self):
        t0 = time.perf_counter()
        while not self.stop.is_set():
            # The task's process plus its helper process (the second reader of the file), if any.
            kids = self.children()
            self.helper_peak = max(getattr(self, "helper_peak", 0), *(self.rss(k) for k in kids), 0)
            self.samples.append((time.perf_counter() - t0, self.rss() + sum(self.rss(k) for k in kids)))
            time.sleep(0.1)


def drop_database(url: str) -> None:
    """Start from an empty database so runs are comparable (earlier runs would grow the indexes)."""
    import psycopg2

    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


def raw_copy(path: Path) -> float:
    from django.db import connection

    cols = ", ".join(f"c{i} text" for i in range(len(HEADER)))
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_raw_copy")
        cur.execute(f"CREATE TABLE bench_raw_copy ({cols})")
        t0 = time.perf_counter()
        with open(path, "rb") as fh:
            cur.copy_expert("COPY bench_raw_copy FROM STDIN WITH (FORMAT csv, HEADER true)", fh)
        elapsed = time.perf_counter() - t0
        cur.execute("DROP TABLE bench_raw_copy")
    return elapsed


def write_floor(lender_id: int) -> float:
    """Seconds to write the imported rows again into empty copies of the two tables (same indexes)."""
    from django.db import connection

    with connection.cursor() as cur:
        for t in ("borrower", "overdueaccount"):
            cur.execute(f"DROP TABLE IF EXISTS bench_floor_{t}")
            cur.execute(f"CREATE TABLE bench_floor_{t} (LIKE cases_{t} INCLUDING DEFAULTS INCLUDING INDEXES"
                        f" INCLUDING CONSTRAINTS)")
        cur.execute("CHECKPOINT")
        t0 = time.perf_counter()
        for t in ("borrower", "overdueaccount"):
            cur.execute(f"INSERT INTO bench_floor_{t} SELECT * FROM cases_{t} WHERE lender_id = %s", [lender_id])
        elapsed = time.perf_counter() - t0
        for t in ("borrower", "overdueaccount"):
            cur.execute(f"DROP TABLE bench_floor_{t}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keep-db", action="store_true", help="reuse the bench database instead of starting empty")
    args = ap.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"placements-{args.rows}.csv"
    if not path.exists():
        t0 = time.perf_counter()
        generate(path, args.rows)
        print(f"generated {path.name} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")
    url = os.environ.setdefault("BENCH_DATABASE_URL", DEFAULT_URL)
    if not args.keep_db:
        # Each run starts from an empty database, so this script only drops one that is plainly a bench's.
        if not url.rsplit("/", 1)[1].startswith("servicing_bench_"):
            sys.exit(f"refusing to drop {url}: name a database servicing_bench_..., or pass --keep-db")
        drop_database(url)
    setup_django()
    from django.utils import timezone

    from cases.importers.services import placement_batch_process
    from cases.models import Lender, PlacementBatch, User

    copy_s = raw_copy(path)
    print(f"raw COPY of the same file into a bare table: {copy_s:.2f} s ({args.rows / copy_s:,.0f} rows/s)")

    code = f"bench-{timezone.now():%Y%m%d%H%M%S}"
    lender = Lender.objects.create(name=code, code=code, status="active")
    user = User.objects.create(username=code, role="lender", lender=lender)
    batch = PlacementBatch.objects.create(lender=lender, uploaded_by=user, original_name=path.name, sha256=code,
                                          options={"language": "en"})
    batch.file.name = path.name  # already in MEDIA_ROOT: no copy
    batch.save(update_fields=["file"])
    from django.db import connection

    with connection.cursor() as cur:
        # Every run starts right after a checkpoint (the import writes more WAL than the default
        # max_wal_size, so where the next one falls would otherwise vary from run to run).
        cur.execute("CHECKPOINT")
        cur.execute("SELECT pg_current_wal_lsn()")
        lsn0 = cur.fetchone()[0]
    sampler = RssSampler()
    rss0 = sampler.rss()
    sampler.start()
    t0 = time.perf_counter()
    batch = placement_batch_process(batch_id=batch.pk)
    elapsed = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    assert batch.state == "applied", (batch.state, batch.error_message)
    assert batch.created_count == args.rows, batch.created_count
    peaks = [rss for _t, rss in sampler.samples]
    first_tenth = max(peaks[: max(1, len(peaks) // 10)])
    print(f"import: {args.rows:,} rows in {elapsed:.2f} s = {args.rows / elapsed:,.0f} rows/s"
          f" (created {batch.created_count:,}, errors {batch.error_count})")
    print(f"phases (s): {batch.report.get('timings')}")
    with connection.cursor() as cur:
        cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [lsn0])
        print(f"WAL written by the import: {float(cur.fetchone()[0]) / 1e6:,.0f} MB")
    print(f"ratio to raw COPY: {elapsed / copy_s:.2f}x   (target <= 4x; <= 30 s for 1M rows)")
    floor_s = write_floor(lender.pk)
    print(f"write floor (the same borrowers and accounts inserted again into empty copies of the tables,"
          f" no validation, no keys, one connection): {floor_s:.2f} s = {floor_s / copy_s:.2f}x the raw COPY")
    print(f"memory (task process + helper process): RSS before {rss0 / 1e6:.0f} MB, peak during the first tenth"
          f" {first_tenth / 1e6:.0f} MB, peak overall {max(peaks) / 1e6:.0f} MB (flat if these two are close);"
          f" the helper alone peaked at {getattr(sampler, 'helper_peak', 0) / 1e6:.0f} MB")

    # Re-import of the same content under a new name: every row unchanged, nothing written.
    again = PlacementBatch.objects.create(lender=lender, uploaded_by=user, original_name=path.name,
                                          sha256=code + "-again", options={"language": "en"})
    again.file.name = path.name
    again.save(update_fields=["file"])
    t0 = time.perf_counter()
    again = placement_batch_process(batch_id=again.pk)
    print(f"re-import (all unchanged): {time.perf_counter() - t0:.2f} s, unchanged {again.unchanged_count:,},"
          f" updated {again.updated_count}, created {again.created_count}")


if __name__ == "__main__":
    main()

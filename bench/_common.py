"""Helpers shared by the benchmarks: a dedicated PostgreSQL database and percentile maths."""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# One database per benchmark by default (servicing_bench_<script>), so their data sets never mix.
DEFAULT_URL = f"postgres://postgres@127.0.0.1:5432/servicing_bench_{Path(sys.argv[0]).stem}"


def setup_django(url: str | None = None) -> None:
    """Point Django at the benchmark database (created if missing) and migrate it."""
    import psycopg2

    url = url or os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "servicing.settings")
    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if not cur.fetchone():
            cur.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def summary(name: str, ms: list[float]) -> str:
    return f"{name:<42} n={len(ms):>6}  p50={pct(ms, 50):7.3f} ms  p95={pct(ms, 95):7.3f} ms  p99={pct(ms, 99):7.3f} ms  mean={statistics.fmean(ms):7.3f} ms"

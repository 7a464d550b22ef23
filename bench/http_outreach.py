"""Outreach over HTTP under load: gunicorn on PostgreSQL, N agent clients posting contact attempts.

Scenarios (same server, same run):
  baseline  every client posts to a trivial authenticated DRF endpoint that inserts one row
  (a)       one lender, 50 agents: every append goes to that lender's audit chain
  (b)       50 lenders, one agent each: 50 chains
Each client is a thread with its own keep-alive connection and token, cycling over its agent's
accounts; some accounts are driven past the CN daily caps on purpose, so part of the answers are 409.
Afterwards every recorded attempt is checked against the daily caps of the policy in force (counted
per number / per borrower and local day, as the engine counts them): not one may exceed a cap.

Targets: (a) >= 0.8 x (b), and >= 300 attempts/s. Traffic only to 127.0.0.1; loops bounded by a request
count and a deadline. Its own database (servicing_bench_http_outreach), dropped at the start and end;
the script refuses to drop a database whose name does not start with servicing_bench_.

    .venv/bin/python bench/http_outreach.py [--requests 3000] [--seconds 60] [--workers 4 --threads 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from _common import ROOT, pct

DB_NAME = "servicing_bench_http_outreach"
BASE_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
URL = f"{BASE_URL}/{DB_NAME}"
CLIENTS = 50
ACCOUNTS_PER_AGENT = 5  # 3000 requests over 250 accounts: 12 each, past the 6-a-day unanswered cap
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _admin():
    import psycopg2

    conn = psycopg2.connect(f"{BASE_URL}/postgres")
    conn.autocommit = True
    return conn


def drop_database(name: str) -> None:
    if not name.startswith("servicing_bench_"):
        raise SystemExit(f"refusing to drop {name!r}: not a servicing_bench_* database")
    conn = _admin()
    with conn.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [name])
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    conn.close()


def create_database(name: str) -> None:
    conn = _admin()
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()


def setup_django() -> None:
    os.environ["DATABASE_URL"] = URL
    os.environ["DJANGO_SETTINGS_MODULE"] = "servicing.settings"
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed() -> dict:
    """Scenario (a): lender A with 50 agents; (b): 50 lenders with one agent each. Tokens for all."""
    from django.contrib.auth.hashers import make_password
    from django.db import connection, transaction
    from rest_framework.authtoken.models import Token

    from cases.models import Borrower, Lender, OverdueAccount, User

    password = make_password("bench-pass-2026")
    due = datetime.now(SHANGHAI).date() - timedelta(days=40)
    scenarios: dict[str, list[dict]] = {"a": [], "b": []}
    with transaction.atomic():
        big = Lender.objects.create(code="big", name="Big lender", status="active")
        small = [Lender.objects.create(code=f"small{i:02d}", name=f"Small lender {i}", status="active") for i in range(CLIENTS)]
        plan = [("a", big, i) for i in range(CLIENTS)] + [("b", small[i], i) for i in range(CLIENTS)]
        n = 0
        for scenario, lender, i in plan:
            agent = User.objects.create(username=f"{scenario}-agent{i:02d}", role="agent", password=password)
            token = Token.objects.create(user=agent, key=secrets.token_hex(20))
            accounts = []
            for _ in range(ACCOUNTS_PER_AGENT):
                n += 1
                phone = f"139{n:08d}"
                borrower = Borrower.objects.create(lender=lender, name=f"借款人{n}", national_id="", phones=[phone],
                                                   emails=[], jurisdiction="CN", time_zones=["Asia/Shanghai"])
                account = OverdueAccount.objects.create(
                    lender=lender, borrower=borrower, external_ref=f"B-{n:06d}", principal=1000, balance=1000,
                    currency="CNY", due_date=due, assigned_agent=agent, status="assigned")
                accounts.append((account.pk, phone))
            scenarios[scenario].append({"token": token.key, "accounts": accounts})
    with connection.cursor() as cur:
        cur.execute("CREATE TABLE bench_ping (id bigserial PRIMARY KEY, user_id bigint NOT NULL, at timestamptz NOT NULL)")
    return scenarios


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, workers: int, threads: int, clock_file: Path) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": URL, "DJANGO_SETTINGS_MODULE": "bench.http_outreach_settings",
           "DB_CONN_MAX_AGE": "600", "LOG_LEVEL": "ERROR", "PYTHONPATH": str(ROOT),
           "SERVICING_CLOCK_FILE": str(clock_file), "DEBUG": "0"}
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "servicing.wsgi:application", "-b", f"127.0.0.1:{port}",
         "-k", "gthread", "-w", str(workers), "--threads", str(threads), "--keep-alive", "30",
         "--log-level", "warning", "--chdir", str(ROOT)],
        env=env, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("gunicorn exited at start") from None
            time.sleep(0.2)
    stop_server(proc)
    raise SystemExit("gunicorn did not start within 60 s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def clock_offset() -> float:
    """Seconds to shift the server's clock (servicing/clock.py) so that "now" is inside CN's window
    (08:00-22:00 Shanghai) for the whole run: attempts are posted as happening now, through the gate."""
    now = datetime.now(SHANGHAI)
    if 9 <= now.hour < 20:
        return 0.0
    target = now.replace(hour=10, minute=0, second=0, microsecond=0)
    return (target - now).total_seconds()


def run(port: int, clients: list[dict], *, total: int, seconds: float, ping: bool) -> dict:
    """Every client posts until ``total`` requests are sent overall or ``seconds`` pass."""
    lock = threading.Lock()
    issued = [0]
    latencies: list[float] = []
    statuses: Counter = Counter()
    reasons: Counter = Counter()
    deadline = time.monotonic() + seconds

    def client(c: dict, offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Token {c['token']}", "Content-Type": "application/json", "Connection": "keep-alive"}
        k = offset
        mine_lat, mine_status = [], Counter()
        while time.monotonic() < deadline:
            with lock:
                if issued[0] >= total:
                    break
                issued[0] += 1
            account, phone = c["accounts"][k % len(c["accounts"])]
            # Every 4th call a conversation (CN: at most 3 a day per borrower), else unanswered (6 a day per number).
            outcome = "right_party_contact" if k % 4 == 3 else "no_answer"
            if ping:
                path, body = "/bench/ping/", b"{}"
            else:
                path = f"/api/v1/accounts/{account}/contact-attempts/"
                body = json.dumps({"channel": "call", "outcome": outcome, "phone": phone}).encode()
            k += 1
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status, data = 0, b""
            mine_lat.append((time.perf_counter() - t0) * 1000)
            mine_status[status] += 1
            if status == 409:
                with lock:
                    for v in json.loads(data).get("violations", []):
                        reasons[v.get("code")] += 1
            elif status not in (200, 201):
                with lock:
                    reasons[f"HTTP {status}: {data[:200]!r}"] += 1
        conn.close()
        with lock:
            latencies.extend(mine_lat)
            statuses.update(mine_status)

    threads = [threading.Thread(target=client, args=(c, i)) for i, c in enumerate(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    done = sum(statuses.values())
    return {"n": done, "elapsed": elapsed, "rate": done / elapsed if elapsed else 0.0, "statuses": dict(statuses),
            "p50": pct(latencies, 50) if latencies else 0.0, "p99": pct(latencies, 99) if latencies else 0.0,
            "recorded_rate": statuses.get(201, 0) / elapsed if elapsed else 0.0, "reasons": reasons}


def queries_per_request(scenarios: dict) -> tuple[int, int]:
    """SQL statements behind one outreach request and one baseline request (in-process test client)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    c = scenarios["b"][-1]
    client = Client(HTTP_AUTHORIZATION=f"Token {c['token']}")
    account, phone = c["accounts"][-1]
    with override_settings(ROOT_URLCONF="bench.http_outreach_urls"):
        with CaptureQueriesContext(connection) as outreach:
            r = client.post(f"/api/v1/accounts/{account}/contact-attempts/",
                            {"channel": "call", "outcome": "no_answer", "phone": phone}, content_type="application/json")
        with CaptureQueriesContext(connection) as ping:
            client.post("/bench/ping/", {}, content_type="application/json")
    if r.status_code not in (201, 409):
        raise SystemExit(f"outreach request answered {r.status_code}: {r.content[:300]!r}")
    return len(outreach), len(ping)


def verify_caps() -> list[str]:
    """Recount every recorded attempt against the daily frequency rules of the CN policy in force."""
    from django.utils import timezone

    from cases.models import ContactAttempt
    from compliance.models import Policy

    policy = Policy.objects.filter(code="CN", status="published", effective_from__lte=timezone.now()).order_by(
        "-effective_from", "-version").first()
    rules = [r for r in policy.rules["rules"] if r["type"] == "frequency" and r.get("period") == "day"]
    rows = list(ContactAttempt.objects.filter(direction="outbound").values_list(
        "borrower_id", "phone", "channel", "outcome", "party", "occurred_at"))
    problems = []
    for rule in rules:
        counts: Counter = Counter()
        for borrower, phone, channel, outcome, party, at in rows:
            if channel not in rule.get("count_channels", [channel]) or outcome not in rule.get("count_outcomes", [outcome]):
                continue
            if rule.get("parties") and party not in rule["parties"]:
                continue
            day = at.astimezone(SHANGHAI).date()
            scope = rule.get("scope", "borrower")
            key = (borrower, phone, day) if scope == "number" else (borrower, day)
            counts[key] += 1
        worst = max(counts.values(), default=0)
        print(f"  {rule['code']:<28} max {rule['max']}/day per {rule.get('scope')}: highest recorded {worst}")
        problems += [f"{rule['code']}: {key} has {n} > {rule['max']}" for key, n in counts.items() if n > rule["max"]]
    return problems


def show(name: str, r: dict) -> None:
    print(f"{name:<34} {r['rate']:8.1f} req/s  ({r['recorded_rate']:.1f} recorded/s)  p50 {r['p50']:7.1f} ms  "
          f"p99 {r['p99']:7.1f} ms  n={r['n']} in {r['elapsed']:.1f}s  {r['statuses']}")
    if r["reasons"]:
        print("    refusals/errors:", dict(r["reasons"].most_common(5)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000, help="requests per scenario")
    ap.add_argument("--seconds", type=float, default=60, help="time limit per scenario")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    args = ap.parse_args()

    drop_database(DB_NAME)
    create_database(DB_NAME)
    proc = None
    try:
        setup_django()
        scenarios = seed()
        q_outreach, q_ping = queries_per_request(scenarios)
        port = free_port()
        offset = clock_offset()
        clock_file = Path(tempfile.mkdtemp(prefix="bench-clock-")) / "clock.json"
        clock_file.write_text(json.dumps({"offset_seconds": offset}) if offset else "")
        proc = start_server(port, args.workers, args.threads, clock_file)
        print(f"gunicorn gthread {args.workers} workers x {args.threads} threads; {CLIENTS} clients; "
              f"{ACCOUNTS_PER_AGENT} accounts per agent; server clock shifted {offset / 3600:+.1f} h into CN hours")
        print(f"SQL statements per request: outreach {q_outreach}, baseline {q_ping}")
        run(port, scenarios["b"][:5], total=100, seconds=20, ping=True)  # warm the workers' connections
        base = run(port, scenarios["a"], total=args.requests, seconds=args.seconds, ping=True)
        show("baseline: one-row insert", base)
        a = run(port, scenarios["a"], total=args.requests, seconds=args.seconds, ping=False)
        show("(a) 1 lender x 50 agents", a)
        b = run(port, scenarios["b"], total=args.requests, seconds=args.seconds, ping=False)
        show("(b) 50 lenders x 1 agent", b)
        print(f"ratios: (a)/(b) = {a['rate'] / b['rate']:.2f} (target >= 0.8); (a) = {a['rate']:.0f} attempts/s "
              f"(target >= 300); (a)/baseline = {a['rate'] / base['rate']:.2f}; (b)/baseline = {b['rate'] / base['rate']:.2f}")
        print("caps (re-counted over every recorded attempt):")
        problems = verify_caps()
        from django.db import connections

        connections.close_all()
        if problems:
            print("CAP BROKEN:", *problems[:20], sep="\n  ")
            raise SystemExit(1)
        print("  no recorded attempt breaks a cap")
    finally:
        if proc is not None:
            stop_server(proc)
        if not args.keep_db:
            from django.db import connections

            connections.close_all()
            drop_database(DB_NAME)


if __name__ == "__main__":
    main()

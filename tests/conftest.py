"""Shared fixtures. Services (PostgreSQL, Redis, a Celery worker, Chromium) are used for real:
without them the tests that need them are skipped, unless REQUIRE_SERVICES=1 (CI), where they fail."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.db import connection
from django.db.backends.signals import connection_created

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _allow_test_truncate(sender, **kwargs):
    """Test flushes TRUNCATE every table; the audit tables refuse that unless the session allows it
    (compliance/migrations/0006_audit_hardening.py). Only the test harness's connections do."""
    conn = kwargs["connection"]
    if conn.vendor == "postgresql":
        with conn.cursor() as cur:
            cur.execute("SET servicing.allow_truncate = 'on'")


connection_created.connect(_allow_test_truncate, dispatch_uid="tests.allow_truncate")


def missing(reason: str):
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _port_open(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def require_postgres():
    if connection.vendor != "postgresql":
        missing("PostgreSQL is not configured (set DATABASE_URL=postgres://...)")


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url or not _port_open(url, 6379):
        missing("Redis is not reachable (set REDIS_URL=redis://127.0.0.1:6379/14)")
    return url


@pytest.fixture
def chromium_path() -> str:
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        missing(f"Chromium not found at {CHROMIUM}")
    return CHROMIUM


def policies_seed() -> None:
    """Put back the policies seeded by migration (transactional tests flush every table)."""
    import json
    from datetime import UTC, datetime

    from compliance.models import Policy

    education_seed()
    if Policy.objects.filter(version=1).exists():
        return
    for name in ("policies_v1.json", "policies_v2.json", "policies_v3.json"):
        for data in json.loads((ROOT / "compliance/migrations" / name).read_text(encoding="utf-8")):
            Policy.objects.get_or_create(
                code=data["code"], version=data["version"],
                defaults={"name": data["name"], "status": "published", "rules": data,
                          "effective_from": datetime.fromisoformat(data["effective_from"]).replace(tzinfo=UTC)},
            )


def education_seed() -> None:
    """Put back the education pages seeded by migration borrowers/0003 (flushed like the policies)."""
    import importlib

    from django.apps import apps

    from borrowers.models import EducationPage

    if not EducationPage.objects.exists():
        importlib.import_module("borrowers.migrations.0003_education_seed").seed(apps, None)


@pytest.fixture(autouse=True)
def _policies_present(request):
    """Any database test starts with the seeded policies, whatever an earlier transactional test flushed."""
    names = set(request.fixturenames)
    if "transactional_db" in names or "live_server" in names:
        request.getfixturevalue("transactional_db")
    elif "db" in names or request.node.get_closest_marker("django_db"):
        request.getfixturevalue("db")
    else:
        return
    from compliance.selectors import policy_cache_clear

    policy_cache_clear()
    policies_seed()


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    """Each test starts with empty throttle counters, in this process's memory (never a shared Redis)."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "tests"}}
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _own_audit_checkpoints(settings, tmp_path):
    """Audit checkpoints go to a directory of this test, never to the developer's var/ (compliance/audit.py)."""
    settings.AUDIT_CHECKPOINT_DIR = tmp_path / "audit-checkpoints"
    settings.AUDIT_CHECKPOINT_KEY = "test-audit-checkpoint-key"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _celery_eager_by_default(settings):
    """Unit tests run tasks in-process; tests using ``celery_worker`` switch to the real broker."""
    from celery._state import _set_task_join_will_block

    from servicing.celery import app

    # With the CELERY_ settings namespace the stored key is the prefixed one.
    app.conf.CELERY_TASK_ALWAYS_EAGER = True
    # An in-process worker started by an earlier test marks this process as "inside a task" for
    # good, after which result.get() refuses; the test process is never inside a task.
    _set_task_join_will_block(False)
    yield
    app.conf.CELERY_TASK_ALWAYS_EAGER = True
    _set_task_join_will_block(False)


@pytest.fixture
def celery_worker_env() -> dict[str, str]:
    """Extra environment for the worker process (a test module overrides this fixture to change settings)."""
    return {}


@pytest.fixture
def celery_worker(transactional_db, require_postgres, redis_url, celery_worker_env):
    """A real ``celery worker`` process, fed through Redis, talking to the test database over PostgreSQL."""
    from servicing.celery import app

    db = connection.settings_dict
    db_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    # Runs are isolated by the Redis database number in REDIS_URL; the queue is the normal one.
    queue = app.conf.task_default_queue
    node = f"test-{uuid.uuid4().hex[:10]}@localhost"
    app.control.purge()
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT), **celery_worker_env}
    log = open(ROOT / f".worker-{node}.log", "w")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "servicing", "worker", "-Q", queue, "-n", node,
         "--pool=solo", "--loglevel=INFO", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    app.conf.CELERY_TASK_ALWAYS_EAGER = False
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"celery worker exited: {(ROOT / log.name).read_text()[-2000:]}")
            if app.control.ping(destination=[node], timeout=1.0):
                break
        else:
            pytest.fail("celery worker did not answer a ping within 60 s")
        yield {"queue": queue, "node": node, "process": proc, "log": Path(log.name)}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        Path(log.name).unlink(missing_ok=True)


@pytest.fixture
def now_at(tmp_path, monkeypatch):
    """Freeze the service clock (servicing.clock) at an instant: ``now_at(datetime)``. Outreach logged
    without a time is then "present" outreach at that instant, judged by the gate before the act."""
    from servicing import clock as clock_module

    path = tmp_path / "now.json"
    monkeypatch.setenv(clock_module.ENV, str(path))

    def freeze(at):
        """Freeze at ``at``; ``None`` goes back to real time."""
        if at is None:
            clock_module.set_clock(path=path)
        else:
            clock_module.set_clock(path=path, frozen=at)
        return at

    return freeze
